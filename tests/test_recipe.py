import pytest

from autotune.errors import InvalidRecipe
from autotune.recipe import Recipe, Runtime, content_key, reference_recipes


def test_readable_recipe_names_precision_engine_and_threads():
    assert Recipe("int8", Runtime("litert", threads=2)).describe() == "int8 · litert · 2 threads"
    assert Recipe("fp32", Runtime("litert", threads=1)).describe() == "fp32 · litert · 1 thread"
    assert Recipe("fp32", Runtime("tensorflow", threads=2, xla=True)).describe() == "fp32 · tensorflow xla"


@pytest.mark.parametrize(
    "recipe, words",
    [
        (Recipe("int8", Runtime("tensorflow")), "exists only as TFLite"),
        (Recipe("fp16", Runtime("litert", xla=True)), "XLA"),
        (Recipe("fp32", Runtime("litert", threads=0)), "threads"),
        (Recipe("fp32", Runtime("litert", batch_size=0)), "batch size"),
        (Recipe("bf16", Runtime("litert")), "unknown precision"),  # type: ignore[arg-type]
    ],
)
def test_impossible_recipes_are_rejected_before_any_work(recipe, words):
    with pytest.raises(InvalidRecipe, match=words):
        recipe.validate()


def test_recipe_survives_the_database_round_trip():
    r = Recipe("dynamic-int8", Runtime("litert", threads=2, batch_size=4))
    assert Recipe.from_dict(r.to_dict()) == r


def test_content_key_is_stable_and_sensitive_to_every_part():
    assert content_key("a", {"x": 1, "y": 2}) == content_key("a", {"y": 2, "x": 1})
    assert content_key("a", {"x": 1}) != content_key("a", {"x": 2})
    assert content_key("a", {"x": 1}) != content_key("b", {"x": 1})


def test_references_are_the_fp32_baseline_and_the_seeds_int8_recipe():
    refs = reference_recipes(cores=2)
    assert list(refs) == ["fp32-baseline", "seeds-int8"]
    assert refs["fp32-baseline"].precision == "fp32"
    assert refs["seeds-int8"].precision == "int8"
    assert all(r.runtime.engine == "litert" and r.runtime.threads == 2 for r in refs.values())
