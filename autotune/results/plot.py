"""A study at a glance, as one PNG: every timed trial with the Pareto front and the reference
recipes, and how the hypervolume of the feasible front grew trial by trial (the search-efficiency
benchmark's measure, for any of autotune's objectives). Agg canvas only, no pyplot state."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from optuna.trial import TrialState

from autotune._files import writing_atomically
from autotune.errors import ConfigError
from autotune.results.front import FrontRow, fastest_feasible, front_rows, ranking_metric, timed
from autotune.results.pareto import hypervolume, non_dominated
from autotune.storage import store
from autotune.storage.record import ACCURACY, MAE, TrialRecord

BASELINE_REF = "fp32-baseline"
REFERENCES = ((BASELINE_REF, "D", "black", "fp32 baseline"), ("seeds-int8", "s", "tab:orange", "seeds' int8"))
FRONT, FRONT_EDGE = "tab:blue", "#16467a"
Label = tuple[float, float, str, bool]  # x, y, text, bold


def _baseline(study: optuna.Study) -> dict[str, Any]:
    if store.BASELINE in study.user_attrs:
        return study.user_attrs[store.BASELINE]
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(t)
        if timed(t) and record.reference == BASELINE_REF and record.metrics is not None:
            return record.metrics.values
    raise ConfigError(f"study {study.study_name!r} has no measured fp32 baseline to compare against")


def _relative(name: str, m: dict[str, Any], baseline: dict[str, Any]) -> float:
    """Accuracy as it is; latency as 1 / the interleaved speed-up (comparable across runs);
    any other objective (throughput, size) as a fraction of the baseline's."""
    if name in (ACCURACY.name, MAE.name):
        return float(m[name])
    if name == "latency_p50_ms":
        return 1.0 / float(m["speedup"])
    return float(m[name]) / float(baseline[name])


def in_run_order(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """``trials`` in the order they finished (those not finished last, by number): trial
    numbers are given as trials are queued, and a trial queued ahead of the queue runs before
    trials numbered below it."""
    return sorted(trials, key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number))


def hypervolume_curve(study: optuna.Study, limit: float, *, budget_trials: bool = False) -> list[float]:
    """The hypervolume after each trial (in the order they finished; with ``budget_trials``, after
    each trial the budget counts: not failed, waiting or a repeat) of the feasible timed trials,
    over all of the study's objectives, with the reference point at the baseline's figures
    and the accuracy limit: the volume of trade-offs strictly better than shipping the
    baseline. Maximised objectives are negated, so every axis is minimised."""
    baseline = _baseline(study)
    names = study.metric_names or ["latency_p50_ms", "accuracy", "size_bytes"][: len(study.directions)]
    signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    # The limit's edge on each quality: ``limit`` worse than the baseline.
    edge = {q.name: baseline.get(q.name, 0.0) + q.sign * limit for q in (ACCURACY, MAE)}
    ref = signs * np.array([edge.get(n, 1.0) for n in names])
    points: list[np.ndarray] = []
    curve: list[float] = []
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in in_run_order(study.get_trials(deepcopy=False)):
        record = TrialRecord.from_trial(t)
        if budget_trials and (t.state not in counted or record.repeat_of is not None):
            continue
        m = record.metrics
        if timed(t) and m is not None and m.feasible:
            p = signs * np.array([_relative(n, m.values, baseline) for n in names])
            if np.all(p < ref):
                points.append(p)
        curve.append(hypervolume(points, ref))
    return curve


def speedup_curve(study: optuna.Study) -> list[float]:
    """The best interleaved speed-up of a feasible timed searched trial (not a reference) after
    each trial the budget counts, 0 before the first: trials counted as
    ``hypervolume_curve(budget_trials=True)`` counts them."""
    best, curve = 0.0, []
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in in_run_order(study.get_trials(deepcopy=False)):
        record = TrialRecord.from_trial(t)
        if t.state not in counted or record.repeat_of is not None:
            continue
        m = record.metrics
        if timed(t) and m is not None and m.feasible and not record.reference:
            best = max(best, float(m["speedup"]))
        curve.append(best)
    return curve


def found_at(curve: list[float], target: float, within: float) -> int | None:
    """The first trial (1-based, in the curve's count) whose best came within ``within`` (a
    fraction) of ``target``, or None."""
    return next((i + 1 for i, v in enumerate(curve) if v >= (1 - within) * target), None)


def short_recipe(text: str, width: int = 32) -> str:
    """``distill w0.5 T4 α0.7 → int8 · litert · 2 threads`` as ``int8 · 2 threads`` over
    ``distill w0.5 T4 α0.7``: what is deployed first, the chain that made it below."""
    *chain, last = text.replace(" · litert", "").split(" → ")
    if len(last) > width:
        last = re.sub(r"(\d+) threads?", r"\1t", last).replace("batch ", "b")
    cut = lambda s: s if len(s) <= width else s[: width - 1] + "…"
    return cut(last) + (f"\n{cut(' → '.join(chain))}" if chain else "")


def _staircase(pts: list[tuple[float, float]], by: str) -> list[tuple[float, float]]:
    """The points no other beats in both x and accuracy (a three-objective front, or
    re-measured latencies, can hold some that are beaten in 2-D)."""
    sign = 1.0 if by == "latency_p50_ms" else -1.0  # smaller is better after the sign
    return sorted(set(non_dominated(pts, lambda p: (sign * p[0], -p[1]))))


# Label offsets in points, nearest first: beside the point, then further up or down and out.
_OFFSETS = sorted(
    ((dx, dy) for dx in (7, -7, 28, -28) for dy in (7, -9, 22, -24, 40, -42, 60, -62)), key=lambda o: abs(o[0]) + abs(o[1])
)
_TEXT = {"fontsize": 7.5, "color": "#1b2a3a", "zorder": 6, "textcoords": "offset points"}
_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75}
_LEADER = {"arrowstyle": "-", "lw": 0.6, "color": "0.45", "shrinkA": 0, "shrinkB": 4}


def _place_labels(ax: Any, renderer: Any, items: list[Label], marks: list[tuple[float, float, float]]) -> None:
    """Greedy placement: each label (with a thin leader line to its point) takes the nearest
    offset whose box stays inside the axes and clear of the legend, the ``marks`` (x, y,
    half-size in pixels) and the labels already placed, else the one overlapping least."""
    centres = [(*ax.transData.transform((x, y)), h) for x, y, h in marks]
    placed = [Bbox.from_extents(px - h, py - h, px + h, py + h) for px, py, h in centres]
    placed.append(ax.get_legend().get_window_extent(renderer))
    for x, y, text, bold in sorted(items):
        tried: list[tuple[float, Any, Bbox]] = []
        for dx, dy in _OFFSETS:
            ann = ax.annotate(
                text, (x, y), xytext=(dx, dy), ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                fontweight="bold" if bold else "normal", bbox=_BOX, arrowprops=_LEADER, **_TEXT,
            )
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            clash = sum(_area(box, b) for b in placed) + box.width * box.height - _area(box, ax.bbox)
            tried.append((clash, ann, box))
            if clash == 0:
                break
        clash, ann, box = min(tried, key=lambda c: c[0])
        for _, other, _ in tried:
            if other is not ann:
                other.remove()
        placed.append(box)


def _area(a: Bbox, b: Bbox) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def _front_panel(
    ax: Any, study: optuna.Study, rows: list[FrontRow], env: str | None, limit: float, by: str
) -> tuple[list[Label], list[tuple[float, float]]]:
    """Draw the trials, front, references and limit; return the front's labels to place and
    where the reference markers are, for the labels to avoid."""
    # A regressor's MAE is drawn negated (ticks show it positive), so up is better on both tasks.
    q = MAE if any(r.quality_name == MAE.name for r in rows) else ACCURACY
    quality, sign = q.name, (1.0 if q.higher_is_better else -1.0)
    acc_line = sign * _baseline(study)[quality] - limit
    floor = acc_line - 6 * max(limit, 0.005)  # far-off accuracies would flatten the front
    shown = {r.trial for r in rows}
    records = [(t, TrialRecord.from_trial(t)) for t in study.get_trials(deepcopy=False)]
    metrics = [
        rec.metrics
        for t, rec in records
        if rec.metrics is not None and timed(t) and t.number not in shown and (env in (None, "all") or rec.env_id == env)
    ]
    cloud = [(float(m[by]), sign * float(m[quality])) for m in metrics if m.get(by) is not None]
    rows = [r for r in rows if getattr(r, by) is not None]
    if not cloud and not rows:
        raise ConfigError(f"no timed trial of study {study.study_name!r} recorded {by}")
    front = [r for r in rows if r.on_front]
    at = lambda rs: [(float(getattr(r, by)), sign * r.quality) for r in rs]

    def scatter(pts: list[tuple[float, float]], marker: str = "o", label: str | None = None, **kw: Any) -> None:
        """Points below the floor sit on it, as triangles."""
        for sel, mk in (([p for p in pts if p[1] >= floor], marker), ([(x, floor) for x, y in pts if y < floor], "v")):
            if sel:
                ax.scatter(*zip(*sel), marker=mk, label=label, clip_on=False, **kw)
                label = None

    scatter(cloud, s=14, color="0.6", alpha=0.7, lw=0, label="timed trial", zorder=2)
    # The front is shown at its end-of-run re-measurement; where that moved a point, the
    # search's figure stays visible, joined to it, so the grey cloud (search figures) and the
    # front can be compared honestly.
    moved = [r for r in rows if by == "latency_p50_ms" and r.remeasured and abs(r.latency_p50_ms / r.search_latency_p50_ms - 1) > 0.02]
    for i, r in enumerate(moved):
        y = max(sign * r.quality, floor)
        ax.plot([r.search_latency_p50_ms, r.latency_p50_ms], [y, y], ls=":", color="0.35", lw=1.0, zorder=2.5)
        ax.scatter([r.search_latency_p50_ms], [y], marker="o", s=22, facecolor="white", edgecolor="0.35", lw=0.9, zorder=2.6,
                   label="search figure, re-measured at the end" if i == 0 else None)
    if (stairs := _staircase(at(front), by)):
        stairs = [(x, max(y, floor)) for x, y in stairs]
        ax.step(*zip(*stairs), where="post" if by == "latency_p50_ms" else "pre", color=FRONT, lw=1.6, alpha=0.8, zorder=3)
    for ok, label in ((True, "Pareto front"), (False, "front, past the limit")):
        pts = at(r for r in front if r.feasible == ok)
        scatter(pts, s=36, color=FRONT if ok else "white", edgecolor=FRONT_EDGE, lw=1.2, label=label, zorder=4)
    for ref, marker, color, label in REFERENCES:
        pts = at(r for r in rows if r.reference == ref)
        scatter(pts, marker, s=110, facecolor="none", edgecolor=color, lw=2, label=label, zorder=5)
    limit_text = f"MAE limit (increase ≤ {limit:g})" if q is MAE else f"accuracy limit (drop ≤ {limit:g})"
    ax.axhline(acc_line, color="tab:red", ls="--", lw=1.2, label=limit_text, zorder=1)
    best = fastest_feasible(rows, limit, by=by)
    if best is not None:
        what = "best" if by == "throughput_sps" else "fastest"
        scatter(at([best]), "*", s=260, color="gold", edgecolor="0.2", lw=0.8, label=f"{what} within the limit", zorder=4.5)
    ys = [y for _, y in cloud] + [sign * r.quality for r in rows]
    if min(ys) < floor:
        worse = f"MAE above {-floor:.3g}" if q is MAE else f"accuracy below {floor:.3g}"
        ax.scatter([], [], marker="v", color="0.6", label=f"{worse}, drawn on the axis")
    xs = [x for x, _ in cloud] + [x for x, _ in at(rows)]
    if min(xs) > 0 and max(xs) / min(xs) > 10:  # log scale when the range spans more than 10x
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1000 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    pad = 0.25 * max(limit, 0.005)
    ax.set_ylim(max(min(ys + [acc_line]), floor) - pad, max(ys + [acc_line]) + pad)
    ax.margins(x=0.12)
    ax.set_xlabel("samples per second (more is better)" if by == "throughput_sps" else "latency p50, ms (less is better)")
    ax.set_ylabel("MAE (less is better)" if q is MAE else "accuracy")
    if q is MAE:
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{-v:g}"))
    ax.set_title("Timed trials and the Pareto front", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    labels = [
        (x, max(y, floor), f"#{r.trial} {short_recipe(r.recipe)}" + (f"\n{quality} {sign * y:.3f}" if y < floor else ""), r is best)
        for r, (x, y) in zip(front, at(front))
    ]
    return labels, [(x, max(y, floor)) for x, y in at(r for r in rows if r.reference)]


def plot_study(study: optuna.Study, out: Path, *, limit: float, env: str | None = None) -> Path:
    """Write the study's figure to ``out`` (PNG, replaced atomically) and return its path."""
    out = Path(out)
    parent = out.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {out}: its directory {parent} does not exist or is not writable")
    trials = study.get_trials(deepcopy=False)
    if not any(timed(t) for t in trials):
        raise ConfigError(f"study {study.study_name!r} has no timed trials to plot yet")
    rows = front_rows(study, env=env)
    by = ranking_metric(study)
    curve = hypervolume_curve(study, limit)

    fig = Figure(figsize=(13, 5.5), dpi=120)
    canvas = FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.7, 1]})
    labels, references = _front_panel(left, study, rows, env, limit, by)

    numbers = sorted(t.number for t in trials)
    right.step(numbers, curve, where="post", color=FRONT, lw=1.8)
    right.fill_between(numbers, curve, step="post", color=FRONT, alpha=0.12, lw=0)
    if curve[-1] > 0:
        right.annotate(f"{curve[-1]:.4g}", (numbers[-1], curve[-1]), xytext=(-4, 6), textcoords="offset points", ha="right")
    else:
        right.text(0.5, 0.5, "no feasible trial beats the baseline yet", transform=right.transAxes, ha="center", color="0.4")
    right.set_xlabel("trial")
    right.set_ylabel("hypervolume (feasible)")
    right.set_title(f"Search progress ({len(study.directions)} objectives vs the baseline)", fontsize=11)
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)

    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    gated = sum(t.state == TrialState.COMPLETE and TrialRecord.from_trial(t).gated is not None for t in trials)
    counts = f"{sum(timed(t) for t in trials)} timed trials, {gated} gated, {count[TrialState.FAIL]} failed"
    where = f" · environment {env}" if env else ""
    fig.suptitle(f"{study.study_name}: {counts}, {count[TrialState.PRUNED]} pruned{where}", fontsize=12.5)
    fig.tight_layout()
    marks = [(x, y, 5.0) for x, y, _, _ in labels] + [(x, y, 12.0) for x, y in references]
    _place_labels(left, canvas.get_renderer(), labels, marks)

    with writing_atomically(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
