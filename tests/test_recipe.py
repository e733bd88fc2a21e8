import pytest

from autotune.build.candidate import content_key
from autotune.errors import InvalidRecipe
from autotune.search.recipe import Recipe, Runtime, reference_recipes


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


def test_a_chain_runs_distill_channel_prune_prune_qat_in_that_order():
    from autotune.techniques import ChannelPrune, Distill, MagnitudePrune, QuantizeAware

    chain = (Distill(width=0.5), ChannelPrune(keep=0.5), MagnitudePrune(sparsity=0.5), QuantizeAware())
    r = Recipe("int8", Runtime("litert", threads=1), steps=chain)
    assert r.validate() is r
    assert r.describe().startswith("distill w0.5 T4 α0.7 → channel-prune keep 0.5 → prune 0.5 constant → QAT → int8")
    assert Recipe.from_dict(r.to_dict()) == r


@pytest.mark.parametrize(
    "steps, precision, words",
    [
        (("prune", "channel"), "fp32", "channel-prune cannot follow prune"),
        (("qat", "distill"), "int8", "distill cannot follow qat"),
        (("channel", "channel"), "fp32", "channel-prune cannot follow channel-prune"),
        (("qat",), "fp32", "qat must be converted at int8"),
        (("qat",), "dynamic-int8", "qat must be converted at int8"),
    ],
)
def test_impossible_chains_are_rejected_before_any_work(steps, precision, words):
    from autotune.techniques import ChannelPrune, Distill, MagnitudePrune, QuantizeAware

    make = {"prune": MagnitudePrune(), "channel": ChannelPrune(), "qat": QuantizeAware(), "distill": Distill()}
    with pytest.raises(InvalidRecipe, match=words):
        Recipe(precision, Runtime("litert"), steps=tuple(make[s] for s in steps)).validate()


@pytest.mark.parametrize(
    "step, words",
    [
        ("MagnitudePrune(sparsity=1.2)", "target sparsity"),
        ("MagnitudePrune(schedule='cubic')", "unknown pruning schedule"),
        ("MagnitudePrune(epochs=0)", "at least one epoch"),
        ("ChannelPrune(keep=0.0)", "keep must be between"),
        ("Distill(width=1.5)", "width must be between"),
        ("Distill(temperature=0)", "temperature must be positive"),
    ],
)
def test_technique_parameters_out_of_range_are_rejected(step, words):
    from autotune.techniques import ChannelPrune, Distill, MagnitudePrune  # noqa: F401 (used by eval)

    with pytest.raises(InvalidRecipe, match=words):
        Recipe("fp32", Runtime("litert"), steps=(eval(step),)).validate()


def test_a_stored_step_of_unknown_name_is_one_clear_error():
    data = Recipe("fp32", Runtime("litert")).to_dict() | {"steps": [{"name": "sparsify-v9", "params": {}}]}
    with pytest.raises(InvalidRecipe, match="unknown technique 'sparsify-v9'"):
        Recipe.from_dict(data)
