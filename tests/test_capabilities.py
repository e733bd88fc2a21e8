"""What a model allows shrinks the space: the sampler never proposes an excluded step. No TensorFlow."""

from __future__ import annotations

import optuna
import pytest

from autotune.search.capabilities import Capabilities, choices, switch
from autotune.search.plugins import load_space
from autotune.search.recipe import Recipe, Runtime
from autotune.storage import store
from autotune.techniques import Distill, QuantizeAware

NO_STUDENT_NO_INT8 = Capabilities(
    techniques={"distill": "no layer can lose channels", "channel-prune": "no layer can lose channels", "prune": None,
                "qat": "TF-MOT cannot quantise this model: BatchNormalization"},
    precisions={"fp32": None, "fp16": None, "dynamic-int8": None, "int8": "full-integer conversion failed"},
    engines={"litert": None, "tensorflow": None, "xla": "XLA cannot compile op X"},
)


def _recipes(space_name: str, found: Capabilities | None, n: int = 150) -> list[Recipe]:
    space = load_space(space_name)
    study = optuna.create_study(directions=["minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    if found is not None:
        study.set_user_attr(store.CAPABILITIES, found.to_dict())
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space(trial))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize("space", ["default", "quick", "pruning"])
def test_spaces_never_propose_what_the_probe_left_out(space: str) -> None:
    for recipe in _recipes(space, NO_STUDENT_NO_INT8):
        assert NO_STUDENT_NO_INT8.blocking(recipe) is None, recipe.describe()


def test_the_int8_space_proposes_no_step_the_model_cannot_take() -> None:
    found = Capabilities(techniques={"distill": "no", "qat": "BatchNormalization"})
    recipes = _recipes("mobile-int8", found)
    assert all(found.blocking(r) is None for r in recipes)
    assert {s.name for r in recipes for s in r.steps} == {"channel-prune"}


def test_without_a_probe_the_default_space_offers_everything() -> None:
    recipes = _recipes("default", None, 300)
    steps = {s.name for r in recipes for s in r.steps}
    assert steps == {"distill", "channel-prune", "prune", "qat"}
    assert {r.precision for r in recipes} == {"fp32", "fp16", "dynamic-int8", "int8"}
    assert any(r.runtime.xla for r in recipes)
    # With the probe's findings, the same space still searches what the model allows.
    shrunk = _recipes("default", NO_STUDENT_NO_INT8, 300)
    assert {s.name for r in shrunk for s in r.steps} == {"prune"}
    assert {r.precision for r in shrunk} == {"fp32", "fp16", "dynamic-int8"}
    assert any(r.runtime.engine == "tensorflow" for r in shrunk) and not any(r.runtime.xla for r in shrunk)


def test_blocking_names_the_first_excluded_part_and_its_reason() -> None:
    qat = Recipe("int8", Runtime("litert"), steps=(QuantizeAware(),))
    assert NO_STUDENT_NO_INT8.blocking(qat) == ("qat", "TF-MOT cannot quantise this model: BatchNormalization")
    assert NO_STUDENT_NO_INT8.blocking(Recipe("int8")) == ("int8", "full-integer conversion failed")
    assert NO_STUDENT_NO_INT8.blocking(Recipe("fp32", Runtime("tensorflow", xla=True))) == ("xla", "XLA cannot compile op X")
    assert NO_STUDENT_NO_INT8.blocking(Recipe("fp32", Runtime("tensorflow"))) is None
    assert Capabilities().blocking(Recipe("int8", steps=(Distill(),))) is None  # nothing probed: nothing blocked
    again = Capabilities.from_dict(NO_STUDENT_NO_INT8.to_dict())
    assert again == NO_STUDENT_NO_INT8 and list(again.excluded()) == ["distill", "channel-prune", "qat", "int8", "xla"]


def _trial(found: Capabilities) -> optuna.Trial:
    study = optuna.create_study()
    study.set_user_attr(store.CAPABILITIES, found.to_dict())
    return study.ask()


def test_helpers_keep_a_choice_even_when_everything_is_excluded() -> None:
    trial = _trial(Capabilities(precisions={"fp16": "x", "int8": "y"}))
    assert choices(trial, ["fp16", "int8"]) == ["fp16"]
    assert choices(trial, ["fp32", "fp16", "int8"]) == ["fp32"]
    assert [switch(_trial(Capabilities(techniques={"distill": "no"})), "distill", "distill") for _ in range(10)] == [False] * 10
    assert {switch(_trial(Capabilities()), "distill", "distill") for _ in range(40)} == {False, True}


def test_kept_findings_say_so_and_what_they_leave_out() -> None:
    from autotune.report import capabilities_line

    kept = Capabilities(precisions={"int8": "full-integer conversion failed"}, seconds=19.24, kept=True)
    assert Capabilities.from_dict(kept.to_dict()) == kept and "kept" not in Capabilities().to_dict()
    assert capabilities_line(kept.to_dict()) == (
        "probe: kept from an earlier probe of this model (19.2 s saved): 1 left out of the search for this model: int8")
    assert capabilities_line(Capabilities(seconds=3.0).to_dict()) == (
        "probe (3.0 s): this model allows every technique, precision and engine")
