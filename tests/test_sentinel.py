"""What the sentinel's usual reading is: the fast part of its recent readings, so a machine that
is slow most of the time still shows its own speed. No TensorFlow."""

from autotune.measure.sentinel import usual_ms


def test_the_usual_reading_is_the_fast_fifth_not_the_median():
    # Slow most of the time (0.030 ms), its own speed now and then (0.016 ms).
    seen = [0.030] * 9 + [0.016] * 3 + [0.031, 0.029, 0.032]
    assert usual_ms(seen) == 0.016
    assert usual_ms([0.02, 0.021, 0.019]) == 0.019
    # One reading faster than every other (a lucky block) does not set the usual.
    assert usual_ms([0.005] + [0.02] * 14) == 0.02
