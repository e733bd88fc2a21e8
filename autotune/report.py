"""The only module that prints: tables, the live progress display, JSON/CSV and errors."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from autotune.results.front import FrontRow, StudySummary
from autotune.search.capabilities import Capabilities
from autotune.storage import store
from autotune.storage.record import MAE, Quality, Remeasurement, TrialRecord

console = Console(highlight=False)
if not console.is_terminal:
    # Logs and pipes have no width; the front table needs about 120 columns.
    console = Console(highlight=False, width=140)
err_console = Console(stderr=True, highlight=False, width=None if console.is_terminal else 200)


def error(message: str) -> None:
    err_console.print(Text(f"autotune: error: {message}", style="bold red"), soft_wrap=True)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# rich estimates the rate from the samples of its last 30 s by default; a trial can take
# minutes, so the estimate is taken over the whole run.
_WHOLE_RUN_S = 7 * 24 * 3600.0


class RunProgress:
    """A live line: trial i of N, its stage, elapsed and remaining time, best feasible latency.

    Finished trials scroll above it as one line each, which is also what a log file keeps.
    """

    def __init__(self, prefix: str = "") -> None:
        # A worker among several prints its lines with a prefix and no live line (several
        # live lines on one terminal would tear each other).
        self._prefix = prefix
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            TextColumn("· {task.fields[trial]} ·", markup=False),
            TextColumn("{task.fields[stage]}", style="cyan", markup=False),
            TextColumn("  elapsed"),
            TimeElapsedColumn(),
            TextColumn(" remaining"),
            TimeRemainingColumn(),
            TextColumn(" best feasible p50 {task.fields[best]} ms", markup=False),
            console=console,
            refresh_per_second=4,
            transient=True,
            speed_estimate_period=_WHOLE_RUN_S,
            disable=bool(prefix),
        )
        self._task = self._progress.add_task("", total=None, trial="—", stage="", best=_ms(None))
        self._budget = 0

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def _print(self, line: str) -> None:
        console.print(escape(self._prefix) + line)

    def _update(self, *, evaluated: int | None = None, **fields: str) -> None:
        if evaluated is not None:
            fields["description"] = f"trial {min(evaluated + 1, self._budget)} of {self._budget}"
            # Workers may overshoot the budget; nothing then remains.
            self._progress.update(self._task, total=self._budget, completed=min(evaluated, self._budget), **fields)
        else:
            self._progress.update(self._task, **fields)
        # The run goes on once the budget is spent (the front is re-measured): elapsed keeps
        # counting rather than stopping where rich calls the one task finished.
        self._progress.tasks[0].finished_time = None

    def get_renderable(self) -> RenderableType:
        """The live line as it is drawn now."""
        return self._progress.get_renderable()

    def search_started(self, study: str, budget: int, evaluated: int) -> None:
        self._budget = budget
        self._print(f"study [bold]{study}[/]: {evaluated} of {budget} trials done")
        self._update(evaluated=evaluated)

    def trial_started(self, number: int, recipe: str) -> None:
        self._update(trial=f"#{number} {recipe}", stage="start")

    def stage(self, name: str) -> None:
        self._update(stage=name)

    def trial_finished(self, trial: FrozenTrial, evaluated: int, best_feasible_ms: float | None) -> None:
        record = TrialRecord.from_trial(trial)
        recipe = record.recipe_text or "?"
        m = record.metrics
        if record.repeat_of is not None:
            line = f"[dim]repeat[/] #{trial.number:<3} {recipe:<34} measured already as #{record.repeat_of}: not run again"
        elif trial.state == TrialState.COMPLETE and m and m.gated:
            line = f"[yellow]gated[/] #{trial.number:<3} {recipe:<34} {_quality(m.values)} after training: not converted or timed"
        elif trial.state == TrialState.COMPLETE and m:
            mark = "[green]✓[/]" if m.feasible else "[yellow]✗[/]"
            line = (
                f"{mark} #{trial.number:<3} {recipe:<34} p50 {m.figures.latency_p50_ms:.3f} ms  "
                f"{_speedup(m.values)}  {_quality(m.values)}"
                + ("  [yellow]noisy[/]" if m.figures.noisy else "")
            )
        else:
            reason = record.fail_reason or ""
            line = f"[red]{trial.state.name.lower()}[/] #{trial.number:<3} {recipe:<34} {reason}"
        self._print(line)
        self._update(evaluated=evaluated, best=_ms(best_feasible_ms))

    def probe_started(self) -> None:
        self._update(trial="what this model allows", stage="probe")

    def probed(self, found: dict) -> None:
        self._print(capabilities_line(found) + ("; the reasons follow the front" if Capabilities.from_dict(found).excluded() else ""))

    def deployments_queued(self, number: int, count: int) -> None:
        self._print(f"[dim]queued[/] {count} more way{'s' if count > 1 else ''} of deploying #{number}'s model (the model is not trained again)")

    def prefix_queued(self, number: int, recipe: str) -> None:
        self._print(f"[dim]queued[/] the model #{number}'s chain made on its way, within the limit as trained: {recipe} (trained already)")

    def extension_queued(self, number: int, recipe: str) -> None:
        self._print(f"[dim]queued[/] #{number}'s model, among the study's fastest, one step further: {recipe} (trains that step only)")

    def neutral_queued(self, number: int, recipe: str, cost: float) -> None:
        self._print(
            f"[dim]queued[/] #{number}'s model without its last steps, which cannot make it faster and cost {cost:.4f} as trained: {recipe} (trained already)"
        )

    def wider_queued(self, number: int, recipe: str) -> None:
        self._print(f"[dim]queued[/] #{number}'s model, whose accuracy counts most on the front, one value wider: {recipe}")

    def narrower_queued(self, number: int, recipe: str) -> None:
        self._print(f"[dim]queued[/] #{number}'s model, the study's fastest within the limit, one value thinner, ahead of the queue: {recipe}")

    def accurate_siblings_queued(self, number: int, recipes: list[str]) -> None:
        self._print(f"[dim]queued[/] #{number}'s model, whose accuracy counts most on the front, trained {len(recipes)} other way(s) at its shape: " + "; ".join(recipes))

    def siblings_queued(self, number: int, recipes: list[str]) -> None:
        self._print(f"[dim]queued[/] #{number}'s model, among the study's fastest, trained {len(recipes)} other way(s) at its shape: " + "; ".join(recipes))

    def front_remeasured(self, number: int, recipe: str, search: dict, final: dict) -> None:
        if "failed" in final:
            self._print(f"[red]re-measure failed[/] #{number:<3} {recipe}: {final['failed']}")
        else:
            self._print(
                f"re-measured #{number:<3} {recipe:<34} p50 {search['latency_p50_ms']:.3f} → "
                f"{final['latency_p50_ms']:.3f} ms  {_speedup(final)}" + ("  [yellow]noisy[/]" if final.get("noisy") else "")
            )


def _quality(m: dict) -> str:
    """acc 0.9861 (drop +0.0028), or mae 0.1520 (+0.0031) for a regressor."""
    if Quality.of(m) is MAE:
        return f"mae {m['mae']:.4f} ({m['mae_increase']:+.4f})" if "mae_increase" in m else f"mae {m['mae']:.4f}"
    return f"acc {m['accuracy']:.4f} (drop {m['accuracy_drop']:+.4f})" if "accuracy_drop" in m else f"acc {m['accuracy']:.4f}"


def _speedup(m: dict) -> str:
    """×2.41 [2.38–2.45]: the interleaved speed-up and its confidence interval."""
    low, high = m.get("speedup_low"), m.get("speedup_high")
    ci = f" [{low:.2f}–{high:.2f}]" if low is not None and high is not None else ""
    return f"×{m['speedup']:.2f}{ci}"


def front(rows: Sequence[FrontRow], fmt: str, *, title: str, limit: float, objectives: Sequence[str] = ()) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        fields = list(FrontRow.__dataclass_fields__)
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict() | {"params": json.dumps(r.params, sort_keys=True)})
        sys.stdout.write(buf.getvalue())
        return
    remeasured = any(r.remeasured for r in rows)
    throughput = "throughput_sps" in objectives or any(r.batch_size != 1 for r in rows)
    regression = any(not r.higher_is_better for r in rows)
    within = f"an MAE increase of {limit}" if regression else f"an accuracy drop of {limit}"
    caption = (
        f"✓ within {within}; speed-up over the fp32 baseline, timed interleaved with it "
        "(interval: ≥ 95 % confidence); × floor: p50 over the time the MACs take at this machine's measured peak"
        + ("; p50 and speed-up re-measured at the end of the run (* not re-measured)" if remeasured else "")
        + "; ~ noisy"
    )
    table = Table(title=title, caption=caption)
    columns = [("trial", "right"), ("recipe", "left"), ("p50 ms", "right"), ("p99 ms", "right")]
    if throughput:
        columns += [("samples/s", "right")]
    quality = ("mae", "increase") if regression else ("accuracy", "drop")
    columns += [("speed-up", "right"), ("× floor", "right"), (quality[0], "right"), (quality[1], "right"), ("size KB", "right"), ("", "left")]
    for col, justify in columns:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        recipe = r.recipe + (f"  [dim]({r.reference}{'' if r.on_front else ', dominated'})[/]" if r.reference else "")
        ci = f" [{r.speedup_low:.2f}–{r.speedup_high:.2f}]" if r.speedup_low is not None and r.speedup_high is not None else ""
        cells = [str(r.trial), recipe, f"{r.latency_p50_ms:.3f}", f"{r.latency_p99_ms:.3f}"]
        if throughput:
            cells.append("—" if r.throughput_sps is None else f"{r.throughput_sps:,.0f}")
        marks = ("[green]✓[/]" if r.feasible else "[yellow]✗[/]") + ("*" if remeasured and not r.remeasured else "") + ("~" if r.noisy else "")
        cells += [
            f"×{r.speedup:.2f}{ci}",
            "—" if r.floor_ratio is None else f"{r.floor_ratio:.1f}",
            f"{r.quality:.4f}",
            f"{r.quality_loss:+.4f}",
            f"{r.size_bytes / 1024:.0f}",
            marks,
        ]
        table.add_row(*cells)
    console.print(table)


def studies(summaries: Sequence[StudySummary]) -> None:
    table = Table(title="studies")
    for col in ("study", "complete", "failed", "pruned", "budget", "best feasible p50 ms", "recipe", "created"):
        table.add_column(col)
    for s in summaries:
        table.add_row(
            s.name,
            str(s.complete),
            str(s.failed),
            str(s.pruned),
            str(s.budget or "—"),
            _ms(s.best_feasible_ms),
            s.best_recipe or "—",
            s.created,
        )
    console.print(table)


def exported(trial: int, recipe: str, artifact: str, manifest: str, quality: str, why: str) -> None:
    console.print(f"exported trial {trial} ([bold]{recipe}[/]): {why}")
    console.print(f"  artifact  {artifact}\n  manifest  {manifest}\n  {quality} re-measured on the written file (matches the record)")


def capabilities_line(found: dict) -> str:
    caps = Capabilities.from_dict(found)
    left = caps.excluded()
    if found.get("failed"):
        return f"probe could not finish ({escape(found['failed'])}): every technique stays in the search"
    head = f"probe: kept from an earlier probe of this model ({caps.seconds:.1f} s saved)" if caps.kept else f"probe ({caps.seconds:.1f} s)"
    if not left:
        return f"{head}: this model allows every technique, precision and engine"
    return f"{head}: {len(left)} left out of the search for this model: {', '.join(left)}"


def capabilities(found: dict | None) -> None:
    """What the probe found: each excluded technique, precision or engine with its reason."""
    if found is None:
        console.print("no capability probe yet (it runs before the first searched trial)")
        return
    console.print(capabilities_line(found))
    for name, why in Capabilities.from_dict(found).excluded().items():
        console.print(f"  [yellow]left out[/] {name}: {escape(why)}")


def run_done(study: str, evaluated: int, budget: int, trials_run: int, wall_s: float, exhausted: str | None = None) -> None:
    console.print(f"study [bold]{study}[/]: {evaluated} of {budget} trials ({trials_run} run now in {wall_s:.1f} s)")
    if exhausted:
        console.print(f"ended before the budget: {exhausted}")


def _value(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items())
    if isinstance(v, list):
        return f"[{len(v)} values]" if len(v) > 6 else ", ".join(_value(x) for x in v)
    return str(v)


def _pairs(title: str, data: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    for k, v in data.items():
        table.add_row(str(k), _value(v))
    return table


def study_detail(name: str, config: dict, found: dict | None, counts: dict[str, int], baseline: dict | None) -> None:
    """`autotune show NAME`: the study's configuration, what its model allows, its trials."""
    console.print(f"study [bold]{name}[/]: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    console.print(_pairs("configuration", {k: v for k, v in config.items() if v is not None}))
    if baseline:
        console.print(f"baseline: trial {baseline.get('trial')}, p50 {_ms(baseline.get('latency_p50_ms'))} ms, {_quality(baseline)}")
    capabilities(found)


def trial_detail(trial: FrozenTrial, final: Remeasurement | None) -> None:
    """`autotune show`: everything stored about one trial."""
    a = TrialRecord.from_trial(trial)
    head = f"trial {trial.number}: [bold]{a.recipe_text or '?'}[/]  ({trial.state.name.lower()})"
    if a.reference:
        head += f"  reference {a.reference}"
    if a.warm_start:
        head += f"  warm-started from {a.warm_start}"
    if a.deployment_of:
        head += f"  another way of deploying #{a.deployment_of['trial']}'s model"
    if a.prefix_of and a.prefix_of.get("neutral"):
        head += f"  #{a.prefix_of['trial']}'s model without its last steps, which cannot make it faster"
    elif a.prefix_of:
        head += f"  the model #{a.prefix_of['trial']}'s chain made on its way"
    if a.extension_of:
        head += f"  #{a.extension_of['trial']}'s model one step further"
    if a.sibling_of:
        head += f"  #{a.sibling_of['trial']}'s model trained another way" + (" (its accuracy counts most on the front)" if a.sibling_of.get("accurate") else "")
    if a.wider_of:
        head += f"  #{a.wider_of['trial']}'s model one value wider"
    if a.narrower_of:
        head += f"  #{a.narrower_of['trial']}'s model one value thinner"
    if store.queued_first(trial):
        head += ", run ahead of the queue"
    console.print(head)
    if trial.datetime_start and trial.datetime_complete:
        console.print(f"started {trial.datetime_start:%Y-%m-%d %H:%M:%S}, took {(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s")
    if a.fail_reason:
        console.print(f"[red]failed[/]: {a.fail_reason}")
    if a.gated:
        console.print(f"[yellow]gated[/]: {a.gated}")
    if trial.params:
        console.print(_pairs("parameters", dict(trial.params)))
    lineage = a.lineage or ()
    if lineage:
        table = Table(title="lineage", title_justify="left")
        for col in ("#", "step", "parameters and facts"):
            table.add_column(col)
        for i, step in enumerate(lineage):
            facts = {k: v for k, v in step.items() if k != "step" and k != "sparsity_per_layer"}
            table.add_row(str(i), str(step.get("step", "?")), _value(facts))
        console.print(table)
    if a.metrics and a.metrics.values:
        console.print(_pairs("metrics (search)", a.metrics.values))
    if final and final.values:
        console.print(_pairs("metrics (re-measured at the end of the run)", final.values))
    for part, title in ((a.timings, "stage timings (s)"), (a.cache, "cache"), (a.measurement, "measurement")):
        if part:
            console.print(_pairs(title, part))
