import pytest

from autotune.errors import ConfigError
from autotune.inputs.config import make_config, merge_with_stored, storage_url, study_name_for


def test_study_name_defaults_to_demo_or_the_model_file_name():
    assert study_name_for(None) == "demo"
    assert study_name_for("/models/resnet small.keras") == "resnet-small"
    assert study_name_for("/models/exported_sm/") == "exported_sm"


def test_storage_precedence_is_flag_then_environment_then_default(monkeypatch):
    assert storage_url(None) == "sqlite:///studies/autotune.db"
    monkeypatch.setenv("AUTOTUNE_STORAGE", "sqlite:///elsewhere.db")
    assert storage_url(None) == "sqlite:///elsewhere.db"
    assert storage_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_a_flag_that_contradicts_the_stored_study_is_refused():
    stored = make_config(study="s", max_accuracy_drop=0.01, seed=3)
    with pytest.raises(ConfigError, match="max-accuracy-drop 0.01.*0.05"):
        merge_with_stored(stored, {"max_accuracy_drop": 0.05})
    with pytest.raises(ConfigError, match="--seed"):
        merge_with_stored(stored, {"seed": 4})


def test_repeating_the_stored_configuration_or_raising_the_budget_is_allowed():
    stored = make_config(study="s", max_accuracy_drop=0.01, budget=10)
    merged = merge_with_stored(stored, {"max_accuracy_drop": 0.01, "seed": None, "budget": 30})
    assert merged.budget == 30 and merged.max_accuracy_drop == 0.01


@pytest.mark.parametrize("field, value", [("budget", 0), ("max_accuracy_drop", -0.1), ("seed", -1)])
def test_out_of_range_values_are_one_line_config_errors(field, value):
    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        make_config(study="s", **{field: value})
