import optuna
import pytest

from autotune.errors import ConfigError
from autotune.search.objective import Objective
from autotune.search.plugins import load_objective, load_space
from autotune.search.recipe import Recipe


@pytest.mark.parametrize("name", ["default", "quick"])
def test_builtin_spaces_sample_valid_recipes(name):
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        recipe = space(trial)
        assert isinstance(recipe, Recipe)
        recipe.validate()
        seen.add((recipe.precision, recipe.runtime.engine, recipe.runtime.xla))
        study.tell(trial, 0.0)
    assert {"fp32", "fp16", "dynamic-int8", "int8"} <= {p for p, _, _ in seen}
    assert ("fp32", "tensorflow", True) in seen and ("fp32", "tensorflow", False) in seen


def test_builtin_latency_objective_minimises_latency_and_maximises_accuracy():
    obj = load_objective("latency")(0.02)
    assert isinstance(obj, Objective)
    assert obj.metric_names == ["latency_p50_ms", "accuracy"] and obj.directions == ["minimize", "maximize"]
    assert obj.feasible({"accuracy_drop": 0.02}) and not obj.feasible({"accuracy_drop": 0.021})


def test_unknown_names_list_the_builtins(empty_workdir):
    with pytest.raises(ConfigError, match="unknown search space 'nope'.*default"):
        load_space("nope")
    with pytest.raises(ConfigError, match="unknown objective 'nope'.*latency"):
        load_objective("nope")


def test_a_users_folder_comes_before_the_builtins(empty_workdir):
    (empty_workdir / "search_spaces").mkdir()
    (empty_workdir / "search_spaces" / "default.py").write_text("def space(trial):\n    return 'mine'\n")
    assert load_space("default")(None) == "mine"


def test_a_space_file_that_raises_on_import_is_a_config_error(empty_workdir):
    bad = empty_workdir / "bad_space.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="raised on import: RuntimeError: boom"):
        load_space(str(bad))
    nofn = empty_workdir / "nofn.py"
    nofn.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no function space"):
        load_space(str(nofn))


def test_space_and_objective_files_written_before_the_layout_by_layer_still_load(empty_workdir):
    # A user's copy of the built-in default space and latency objective as they shipped with
    # the flat package: ``autotune.recipe``, ``autotune.capabilities``, ``autotune.measure``.
    (empty_workdir / "old_space.py").write_text(
        "from autotune.capabilities import can, choices, switch\n"
        "from autotune.measure import usable_cores\n"
        "from autotune.recipe import PRECISIONS, Recipe, Runtime\n"
        "from autotune.techniques import ChannelPrune, Distill, MagnitudePrune, QuantizeAware\n"
        "def space(trial):\n"
        "    precision = trial.suggest_categorical('precision', choices(trial, list(PRECISIONS)))\n"
        "    steps = (Distill(width=0.5),) if switch(trial, 'distill', 'distill') else ()\n"
        "    return Recipe(precision=precision, runtime=Runtime(threads=usable_cores()), steps=steps)\n"
    )
    (empty_workdir / "old_objective.py").write_text(
        "from autotune.objective import Constraint, Metric, Objective\n"
        "def objective(max_drop):\n"
        "    return Objective(name='mine', metrics=(Metric('latency_p50_ms', 'minimize'), Metric('accuracy', 'maximize')),\n"
        "                     constraints=(Constraint('accuracy_drop', max_drop),))\n"
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    recipes = [load_space("old_space.py")(study.ask()) for _ in range(20)]
    assert {r.precision for r in recipes} == {"fp32", "fp16", "dynamic-int8", "int8"}
    assert any(r.steps and r.steps[0].name == "distill" for r in recipes)
    obj = load_objective("old_objective.py")(0.01)
    assert obj.metric_names == ["latency_p50_ms", "accuracy"] and not obj.feasible({"accuracy_drop": 0.02})
