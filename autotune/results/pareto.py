"""Pareto dominance, the non-dominated filter and the exact hypervolume: the one definition the
front, the export choice and the figure share.

Every function here works on points whose every axis is minimised; ``minimised`` turns a
study's objective values into such a point (a maximised objective is negated). Which points
take part is the caller's rule, and feasibility is the project's one definition: a trial is
feasible when every constraint of its objective holds (``Objective.feasible``: each violation
at most 0), recorded on the trial as ``Metrics.feasible``. The front does not filter on it (the
fastest feasible trial is on the unconstrained front anyway, and the infeasible members show
what the limit costs); the hypervolume counts feasible trials only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Point = Sequence[float]


def minimised(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    """The values with every ``"maximize"`` objective negated, so that lower is better on all."""
    return tuple(-float(v) if d == "maximize" else float(v) for v, d in zip(values, directions, strict=True))


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on every axis and better on one (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b))


def non_dominated(items: Sequence[T], point: Callable[[T], Point]) -> list[T]:
    """The items no other item dominates, in their given order. Items with equal points do
    not dominate each other, so all of them stay."""
    points = [point(i) for i in items]
    return [item for item, p in zip(items, points) if not any(dominates(q, p) for q in points)]


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The exact volume of the region the ``points`` dominate and ``reference`` bounds.

    A point not strictly better than the reference on every axis adds nothing. In two
    dimensions the front is swept once, sorted by its first axis, as a sum of rectangles;
    in more, it is sliced along the last axis, each slice a hypervolume one dimension lower
    (exact and quick for the fronts of a few hundred trials that a study holds).
    """
    ref = tuple(float(r) for r in reference)
    inside = [tuple(float(x) for x in p) for p in points if all(float(x) < r for x, r in zip(p, ref, strict=True))]
    return _volume(non_dominated(inside, lambda p: p), ref)


def _volume(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        area, ceiling = 0.0, ref[1]
        for x, y in sorted(points):
            if y < ceiling:
                area += (ref[0] - x) * (ceiling - y)
                ceiling = y
        return area
    ordered = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for i, p in enumerate(ordered):
        top = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        if top > p[-1]:
            volume += (top - p[-1]) * _volume([q[:-1] for q in ordered[: i + 1]], ref[:-1])
    return volume
