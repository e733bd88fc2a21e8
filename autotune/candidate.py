"""Candidates: a model on its way to deployment, with its lineage and content key, and the
builder that turns a Recipe into a deployable artifact through the content cache."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.artifact import artifact_file
from autotune.cache import ContentCache
from autotune.data import Dataset
from autotune.recipe import Recipe, content_key


@dataclass(frozen=True)
class Candidate:
    """A Keras model (or, once converted, an artifact on disk) and how it was made."""

    key: str
    lineage: tuple[dict[str, Any], ...]
    model: Any = None
    path: Path | None = None
    format: str = "keras"


class Builder:
    """Builds recipes from one base model, reusing every cached intermediate and artifact."""

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
        self._base = Candidate(key=content_key("base", model_key), lineage=({"step": "base", "model_key": model_key},))
        self._data_key = data_key
        self._model: Any = model  # loaded lazily unless the caller already has it

    def base_model(self) -> Any:
        if self._model is None:
            from autotune.data import load_model

            self._model = load_model(self.model_path)
        return self._model

    def build(self, recipe: Recipe) -> Candidate:
        """Return the deployable artifact of ``recipe``, built or from the cache."""
        from autotune.context import TechniqueContext

        candidate = self._base
        model = None
        for step in recipe.steps:
            key = content_key(candidate.key, step.name, step.params(), self.seed)
            parent = model if model is not None else self.base_model()
            model = step.apply(parent, TechniqueContext(data=self.data, seed=self.seed, cache=self.cache, key=key))
            candidate = Candidate(key=key, lineage=(*candidate.lineage, {"step": step.name, **step.params()}), model=model)
        convert = {"precision": recipe.precision, "format": recipe.artifact_format, "xla": recipe.runtime.xla}
        if recipe.precision == "int8":
            convert |= {"calibration": self._data_key, "seed": self.seed}
        key = content_key(candidate.key, "convert", convert)

        def write(tmp: Path) -> None:
            from autotune.techniques.convert import representative_sample, to_saved_model, to_tflite

            source = model if model is not None else self.base_model()
            if recipe.artifact_format == "tflite":
                to_tflite(source, recipe.precision, representative_sample(self.data.x_train, self.seed), tmp)
            else:
                to_saved_model(source, recipe.runtime.xla, tmp)

        entry = self.cache.get_or_build(key, write, label=f"convert:{recipe.precision}:{recipe.artifact_format}")
        return Candidate(
            key=key,
            lineage=(*candidate.lineage, {"step": "convert", **convert}),
            path=artifact_file(entry, recipe.artifact_format),
            format=recipe.artifact_format,
        )


def copy_artifact(candidate: Candidate, out_dir: Path) -> Path:
    if candidate.path is None:
        raise ValueError("only a converted candidate has an artifact to copy")
    dest = out_dir / candidate.path.name
    if candidate.path.is_dir():
        shutil.copytree(candidate.path, dest)
    else:
        shutil.copyfile(candidate.path, dest)
    return dest
