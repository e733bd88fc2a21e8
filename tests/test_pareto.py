"""The one Pareto definition the front, the export choice and the figure share (no TensorFlow)."""

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume  # private: here only as the oracle

from autotune.results.pareto import dominates, hypervolume, minimised, non_dominated


def test_dominance_needs_one_strictly_better_axis_and_none_worse():
    assert dominates((1.0, 2.0), (1.0, 3.0))
    assert not dominates((1.0, 2.0), (1.0, 2.0))  # equal points do not dominate each other
    assert not dominates((0.5, 3.0), (1.0, 2.0))  # a trade-off, not dominance
    assert not dominates((1.0, 3.0), (1.0, 2.0))


def test_maximised_objectives_are_negated():
    assert minimised([0.3, 0.98], ["minimize", "maximize"]) == (0.3, -0.98)
    # Faster and more accurate dominates once accuracy is turned around; not before.
    fast, slow = [0.3, 0.99], [0.5, 0.98]
    assert dominates(minimised(fast, ["minimize", "maximize"]), minimised(slow, ["minimize", "maximize"]))
    assert not dominates(slow, fast) and not dominates(fast, slow)


def test_the_non_dominated_filter_keeps_order_and_ties():
    pts = [(0.5, 0.02), (0.3, 0.01), (0.3, 0.01), (0.1, 0.05), (0.9, 0.0), (0.4, 0.03)]
    assert non_dominated(pts, lambda p: p) == [(0.3, 0.01), (0.3, 0.01), (0.1, 0.05), (0.9, 0.0)]
    assert non_dominated([], lambda p: p) == []


def test_hypervolume_by_hand():
    ref = (1.0, 1.0)
    assert hypervolume([(0.5, 0.5)], ref) == pytest.approx(0.25)
    # Two rectangles overlapping in [0.5, 1] x [0.5, 1]: 0.25 + 0.5 - 0.25 (counted once).
    assert hypervolume([(0.5, 0.5), (0.0, 0.5), (0.5, 0.0)], ref) == pytest.approx(0.75)
    assert hypervolume([(1.0, 0.2), (0.2, 1.5)], ref) == 0.0  # not better than the reference
    assert hypervolume([], ref) == 0.0
    assert hypervolume([(0.5, 0.5, 0.5)], (1.0, 1.0, 1.0)) == pytest.approx(0.125)


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_matches_optunas_on_random_fronts(dims):
    rng = np.random.default_rng(dims)
    for n in (1, 2, 5, 30):
        points = rng.uniform(0.0, 1.0, size=(n, dims))
        ref = np.full(dims, 1.0)
        expected = compute_hypervolume(points, ref)
        assert hypervolume(points, ref) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        # On a front, with ties and with points past the reference, still the same.
        ties = np.vstack([points, points[:1], rng.uniform(1.0, 2.0, size=(2, dims))])
        assert hypervolume(ties, ref) == pytest.approx(compute_hypervolume(points, ref), rel=1e-9, abs=1e-12)
