"""The live progress line of a run (no TensorFlow): what it shows while trials go by."""

from __future__ import annotations

import io
from types import SimpleNamespace

from optuna.trial import TrialState
from rich.console import Console

from autotune import report


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _line(progress: report.RunProgress) -> str:
    out = Console(file=io.StringIO(), width=300, color_system=None)
    out.print(progress.get_renderable())
    return " ".join(out.file.getvalue().split())


def _finished(number: int):
    return SimpleNamespace(number=number, state=TrialState.FAIL, user_attrs={})


def test_the_line_shows_the_trial_its_stage_the_times_and_the_best(monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr(report.console, "get_time", clock)
    progress = report.RunProgress()
    progress.search_started("s", budget=4, evaluated=1)
    progress.trial_started(1, "int8 [bold]x[/]")  # a recipe is shown as written, never as markup
    progress.stage("latency")
    line = _line(progress)
    assert "trial 2 of 4 · #1 int8 [bold]x[/] · latency" in line
    assert "elapsed 0:00:00" in line and "remaining -:--:--" in line and "best feasible p50 — ms" in line

    clock.now += 10
    progress.trial_finished(_finished(1), evaluated=2, best_feasible_ms=1.5)
    line = _line(progress)
    assert "trial 3 of 4" in line and "elapsed 0:00:10" in line
    assert "remaining 0:00:20" in line  # two trials left at one per 10 s
    assert "best feasible p50 1.500 ms" in line

    clock.now += 20
    progress.trial_finished(_finished(2), evaluated=5, best_feasible_ms=1.2)  # workers overshoot
    progress.trial_started(2, "re-measuring int8")
    clock.now += 20
    line = _line(progress)
    assert "trial 4 of 4" in line and "remaining 0:00:00" in line
    assert "elapsed 0:00:50" in line  # the re-measurement after the budget still counts


def test_a_worker_prints_its_lines_with_its_prefix_and_no_live_line(capsys):
    with report.RunProgress(prefix="[worker 3] ") as progress:
        progress.search_started("s", budget=2, evaluated=0)
    assert "[worker 3] study s: 0 of 2 trials done" in capsys.readouterr().out
