"""Candidates: a model on its way to deployment, with its lineage and content key (the cache's
address, ``content_key``), and the builder that turns a Recipe into a deployable artifact
through the content cache."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune._files import writing_atomically
from autotune.build.cache import ContentCache
from autotune.build.convert import artifact_file
from autotune.errors import TrainingStopped
from autotune.inputs.data import Dataset
from autotune.search.recipe import Recipe


def content_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts: the cache's content address."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Candidate:
    """A Keras model (in memory, or as a cache entry) or a converted artifact, and how it was made."""

    key: str
    lineage: tuple[dict[str, Any], ...]
    model: Any = None
    path: Path | None = None
    format: str = "keras"

    @property
    def facts(self) -> dict[str, Any]:
        """What the last step recorded (accuracy_keras, sparsity, params, ...)."""
        return self.lineage[-1]


class Builder:
    """Builds recipes from one base model, reusing every cached intermediate and artifact.

    Nothing is loaded or trained that the cache already holds: a recipe whose artifact is
    cached costs a directory lookup per step; one whose first steps are cached starts
    training from the deepest cached model.
    """

    def __init__(
        self,
        model_path: Path,
        model_key: str,
        data: Dataset,
        data_key: str,
        cache: ContentCache,
        seed: int,
        model: Any = None,
    ):
        self.model_path = model_path
        self.data = data
        self.cache = cache
        self.seed = seed
        self._base = Candidate(key=content_key("base", model_key, data_key), lineage=({"step": "base", "model_key": model_key},))
        self._data_key = data_key
        self._model: Any = model  # loaded lazily unless the caller already has it
        self._recurrent: bool | None = None

    @property
    def base_key(self) -> str:
        """The content key of the base model (custom objects included) and the data."""
        return self._base.key

    def base_model(self) -> Any:
        if self._model is None:
            from autotune.inputs.model import load_model

            self._model = load_model(self.model_path)
        return self._model

    def base_copy(self) -> Any:
        """A copy of the base model (weights included) that the caller may wrap or change."""
        return self._load(self._base)

    def fixed_batch(self) -> bool:
        """True if this model's artifacts are converted at the deployed batch (a recurrent
        model: see ``autotune.build.convert``). No technique adds or removes recurrent
        layers, so the base model decides for every candidate made from it."""
        if self._recurrent is None:
            from autotune.techniques.recurrent import is_recurrent

            self._recurrent = is_recurrent(self.base_model())
        return self._recurrent

    def _load(self, candidate: Candidate) -> Any:
        """A model object for ``candidate`` that its consumer may train or wrap freely."""
        from autotune.techniques.training import load_entry

        if candidate.model is not None:
            return candidate.model
        if candidate is self._base:
            # TF-MOT's wrappers train the layers they wrap: never hand out the base itself.
            from autotune._keras import keras

            base = self.base_model()
            clone = keras().models.clone_model(base)
            clone.set_weights(base.get_weights())
            return clone
        assert candidate.path is not None
        return load_entry(candidate.path)

    def build_model(self, recipe: Recipe, first_epoch_rule: Any = None) -> Candidate:
        """Apply the recipe's steps (each from the cache when it holds it).

        Raises TrainingStopped (with ``lineage`` set, the stopped step last) when a step's
        fine-tuning is hopeless after its first epoch by ``first_epoch_rule``; nothing of that
        step is cached.
        """
        from autotune.build.context import TechniqueContext
        from autotune.techniques.training import load_facts, save_entry

        candidate = self._base
        for step in recipe.steps:
            key = content_key(candidate.key, step.name, step.params(), self.seed)
            epochs = int(getattr(step, "epochs", 0))
            entry = self.cache.lookup(key, label=step.name)
            if entry is not None:
                facts, model = load_facts(entry), None
                self.cache.counts.epochs_reused += epochs
            else:
                context = TechniqueContext(data=self.data, seed=self.seed, cache=self.cache, key=key, first_epoch_rule=first_epoch_rule)
                try:
                    model = step.apply(self._load(candidate), context)
                except TrainingStopped as e:
                    self.cache.counts.epochs_trained += 1
                    e.lineage = (*candidate.lineage, {"step": step.name, **step.params(), "stopped_after_epoch": 1, **e.quality})
                    raise
                facts = context.facts
                entry = self.cache.get_or_build(key, lambda tmp, m=model, f=facts: save_entry(m, f, tmp), label=step.name)
                self.cache.counts.epochs_trained += epochs
            lineage = (*candidate.lineage, {"step": step.name, **step.params(), **facts})
            candidate = Candidate(key=key, lineage=lineage, model=model, path=entry)
        return candidate

    def convert(self, candidate: Candidate, recipe: Recipe) -> Candidate:
        """The deployable artifact of ``candidate`` at the recipe's precision and runtime."""
        convert = {"precision": recipe.precision, "format": recipe.artifact_format, "xla": recipe.runtime.xla}
        if recipe.precision == "int8":
            convert |= {"calibration": self._data_key, "seed": self.seed}
        if recipe.artifact_format == "tflite" and self.fixed_batch():
            # The artifact takes exactly this batch; other models' artifacts serve any batch.
            convert["batch"] = recipe.runtime.batch_size
        key = content_key(candidate.key, "convert", convert)

        def write(tmp: Path) -> None:
            from autotune.build.convert import representative_sample, to_saved_model, to_tflite

            source = self._load(candidate)
            if recipe.artifact_format == "tflite":
                calibration = representative_sample(self.data.x_train, self.seed)
                to_tflite(source, recipe.precision, calibration, tmp, batch=recipe.runtime.batch_size)
            else:
                to_saved_model(source, recipe.runtime.xla, tmp)

        entry = self.cache.get_or_build(key, write, label=f"convert:{recipe.precision}:{recipe.artifact_format}")
        return Candidate(
            key=key,
            lineage=(*candidate.lineage, {"step": "convert", **convert}),
            path=artifact_file(entry, recipe.artifact_format),
            format=recipe.artifact_format,
        )

    def build(self, recipe: Recipe) -> Candidate:
        """Return the deployable artifact of ``recipe``, built or from the cache."""
        return self.convert(self.build_model(recipe), recipe)


def copy_artifact(candidate: Candidate, out_dir: Path) -> Path:
    if candidate.path is None:
        raise ValueError("only a converted candidate has an artifact to copy")
    dest = out_dir / candidate.path.name
    with writing_atomically(dest, directory=candidate.path.is_dir()) as tmp:  # never half-written
        if candidate.path.is_dir():
            shutil.copytree(candidate.path, tmp, dirs_exist_ok=True)
        else:
            shutil.copyfile(candidate.path, tmp)
        if dest.is_dir():
            shutil.rmtree(dest)  # an earlier export's (--force): ours replaces it
    return dest
