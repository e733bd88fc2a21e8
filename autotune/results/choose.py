"""Which trial to export: the rules behind ``autotune export``'s choice, as pure functions of
the rows, so that every rule is tested without TensorFlow.

A row is feasible when it is within every limit given (quality loss, p50, size). Among the
feasible rows, ``prefer`` decides: ``latency`` the fastest (a throughput study: the most
samples per second), ``accuracy`` the best quality, ``size`` the smallest artifact, ``knee``
the member of the latency/quality front farthest from the line between its fastest and its
best-quality ends (where a little more time stops buying much quality). When no row is
feasible, ``closest`` picks the one with the smallest relative excess over the limits and
says so; without it, the choice fails with the closest row's figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autotune.errors import ConfigError
from autotune.results.front import FrontRow
from autotune.results.pareto import non_dominated
from autotune.storage.record import MAE

PREFERENCES = ("latency", "accuracy", "size", "knee")


@dataclass(frozen=True)
class Limits:
    quality_loss: float
    max_latency_ms: float | None = None
    max_size_kb: float | None = None
    max_p99_ms: float | None = None
    # Also require the trial's recorded feasibility (the objective's own constraints, custom
    # ones included); off when the user overrides the quality limit for this choice.
    recorded: bool = False

    def excess(self, r: FrontRow) -> float:
        """Sum of how far past each limit ``r`` is, relative to the limit (0: feasible)."""
        parts = [max(0.0, r.quality_loss - self.quality_loss) / max(self.quality_loss, 1e-3)]
        if self.max_p99_ms is not None:
            parts.append(max(0.0, r.latency_p99_ms - self.max_p99_ms) / self.max_p99_ms)
        if self.recorded and not r.feasible and sum(parts) == 0:
            parts.append(1.0)  # past a constraint of the objective this rule cannot see
        if self.max_latency_ms is not None:
            parts.append(max(0.0, r.latency_p50_ms - self.max_latency_ms) / self.max_latency_ms)
        if self.max_size_kb is not None:
            parts.append(max(0.0, r.size_bytes / 1024 - self.max_size_kb) / self.max_size_kb)
        return sum(parts)

    def feasible(self, r: FrontRow) -> bool:
        return self.excess(r) <= 1e-12

    def describe(self, quality_name: str) -> str:
        loss = "an MAE increase" if quality_name == MAE.name else "an accuracy drop"
        text = [f"{loss} of at most {self.quality_loss:g}"]
        if self.max_latency_ms is not None:
            text.append(f"p50 at most {self.max_latency_ms:g} ms")
        if self.max_size_kb is not None:
            text.append(f"size at most {self.max_size_kb:g} KiB")
        if self.max_p99_ms is not None:
            text.append(f"p99 at most {self.max_p99_ms:g} ms")
        return ", ".join(text)


@dataclass(frozen=True)
class Choice:
    row: FrontRow
    why: str
    feasible: bool


def _figures(r: FrontRow) -> str:
    loss = "drop " if r.higher_is_better else "MAE +"
    return f"#{r.trial} ({r.latency_p50_ms:.3f} ms, {loss}{r.quality_loss:.4f}, {r.size_bytes / 1024:.0f} KiB)"


def _quality_key(r: FrontRow) -> float:
    return r.quality_loss  # lower is better for both tasks


def _cost(r: FrontRow, by: str) -> float:
    """Time per sample, lower is better: p50, or for a throughput study 1 / samples per second."""
    if by == "throughput_sps":
        return 1.0 / r.throughput_sps if r.throughput_sps else math.inf
    return r.latency_p50_ms


def knee(rows: list[FrontRow], by: str = "latency_p50_ms") -> FrontRow:
    """The knee of the time/quality-loss front of ``rows``: the member farthest from the chord
    between the fastest and the best-quality member on the ideal corner's side, in coordinates
    normalised to the front's ranges (log time, since speed-ups multiply). When no member lies
    on that side (two members, or a front bulging the other way), the one nearest the ideal
    corner."""
    front = non_dominated(rows, lambda r: (_cost(r, by), r.quality_loss))
    front.sort(key=lambda r: _cost(r, by))
    xs = [math.log(_cost(r, by)) for r in front]
    ys = [r.quality_loss for r in front]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    pts = [((x - min(xs)) / span_x, (y - min(ys)) / span_y) for x, y in zip(xs, ys)]
    nearest = min(range(len(front)), key=lambda i: math.hypot(*pts[i]))
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    norm = math.hypot(x1 - x0, y1 - y0) or 1.0

    def toward_ideal(i: int) -> float:
        """Signed distance from the chord, positive on the ideal corner's (0, 0) side."""
        x, y = pts[i]
        side = (x1 - x0) * (0 - y0) - (0 - x0) * (y1 - y0)
        return math.copysign(1.0, side) * ((x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)) / norm

    best = max(range(len(front)), key=toward_ideal)
    return front[best] if toward_ideal(best) > 1e-9 else front[nearest]


def _comparable(feasible: list[FrontRow]) -> list[FrontRow]:
    """The feasible rows whose shown latencies may be compared with one another.

    The front's members and references show the end-of-run re-measurement, every other trial
    its search figure, and two sittings differ by more than the gaps between close recipes. A
    trial that another feasible one beat in the search (as fast and as accurate, search figures
    on both sides) is left out, so a stale search figure never wins over a member's fresh one;
    the references stay, as the table shows them."""
    unbeaten = {id(r) for r in non_dominated(feasible, lambda r: (r.search_latency_p50_ms, r.quality_loss))}
    return [r for r in feasible if r.reference or r.remeasured or id(r) in unbeaten]


def choose(
    rows: list[FrontRow], limits: Limits, *, prefer: str = "latency", by: str = "latency_p50_ms", closest: bool = False, study: str = ""
) -> Choice:
    if prefer not in PREFERENCES:
        raise ConfigError(f"--prefer must be one of {', '.join(PREFERENCES)}, not {prefer!r}")
    if not rows:
        raise ConfigError(f"study {study!r} has no timed trial to export")
    quality_name = rows[0].quality_name
    within = limits.describe(quality_name)
    feasible = [r for r in rows if limits.feasible(r)]
    if not feasible:
        nearest = min(rows, key=lambda r: (limits.excess(r), r.latency_p50_ms))
        if not closest:
            raise ConfigError(
                f"no trial of {study!r} meets {within}; the closest is {_figures(nearest)}; "
                "relax a limit, pick one with --trial N, or export the closest with --closest"
            )
        return Choice(nearest, f"closest to feasible: no trial meets {within}; {_figures(nearest)} exceeds them least", False)
    if prefer == "latency":
        if by == "throughput_sps":
            best = max(feasible, key=lambda r: (r.throughput_sps or 0.0, -r.quality_loss))
            return Choice(best, f"highest-throughput trial within {within}", True)
        best = min(_comparable(feasible), key=lambda r: (r.latency_p50_ms, r.quality_loss))
        return Choice(best, f"fastest trial within {within}", True)
    if prefer == "accuracy":
        best = min(feasible, key=lambda r: (_quality_key(r), r.latency_p50_ms))
        word = "lowest-MAE" if quality_name == MAE.name else "most accurate"
        return Choice(best, f"{word} trial within {within} (the fastest among equals)", True)
    if prefer == "size":
        best = min(feasible, key=lambda r: (r.size_bytes, r.latency_p50_ms))
        return Choice(best, f"smallest artifact within {within} (the fastest among equals)", True)
    best = knee(feasible, by)
    return Choice(best, f"knee of the latency/quality front within {within}: past it, more time buys little quality", True)
