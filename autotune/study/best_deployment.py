"""The sampler chooses how a model is made, not how it is deployed: once the study has compared
ways of deploying on a model, a searched trial's deployment parameters are those of the way
that was fastest on the most models so far (``BestDeployment``), so no searched trial is spent
timing a new model on a way that has lost (the TensorFlow runtime at batch 1, typically), and
the sampler learns each model from it deployed at its likely best. Its other ways follow as
queued trials (``deployments``). The sampler is shown one trial per trained model
(``model_view``), and is asked again when it proposes a model the study has made.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import AutotuneError
from autotune.search.recipe import Recipe
from autotune.storage import store
from autotune.storage.record import Quality, TrialRecord
from autotune.study.ways import DEPLOYED, Replay, deployment_kind, made_key, measured_trials
from autotune.study.hopeless import hopeless_steps, takes_one


def _deployment_params(trial: FrozenTrial, recipe: dict[str, Any]) -> dict[str, Any]:
    """The deployment parameters a trial took; for a trial queued without parameters (the
    baseline and the references, which deploy the base model), those of the built-in spaces
    that deploy as its recipe says."""
    params = {n: v for n, v in trial.params.items() if n in DEPLOYED}
    if params or trial.params:
        return params
    r = recipe["runtime"]
    if r["engine"] == "tensorflow":
        return {"engine": "tensorflow", "xla": bool(r.get("xla"))}
    return {"engine": r["engine"], "precision": recipe["precision"], "threads": r["threads"]}


def winning_deployment(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The deployment parameters of the way that was the fastest (of the feasible ways, else of
    all) on the most trained models compared so far; the latest such model breaks a tie. None
    until some model was measured more than one way."""
    by_model: dict[str, list[tuple[FrozenTrial, TrialRecord]]] = {}
    for t, r in measured_trials(trials):
        by_model.setdefault(made_key(r.recipe), []).append((t, r))
    wins: dict[str, int] = {}
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for group in by_model.values():
        if len({deployment_kind(r.recipe) for _, r in group}) < 2:
            continue
        pool = [(t, r) for t, r in group if r.metrics.feasible] or group
        t, r = min(pool, key=lambda tr: tr[1].metrics["latency_p50_ms"])
        kind = deployment_kind(r.recipe)
        wins[kind] = wins.get(kind, 0) + 1
        params = _deployment_params(t, r.recipe)
        if kind not in latest or t.number > latest[kind][0]:
            latest[kind] = (t.number, params)
    if not wins:
        return None
    best = max(wins, key=lambda k: (wins[k], latest[k][0]))
    return latest[best][1]


def _offered(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False  # not a choice of this distribution


def _model_key(trial: FrozenTrial) -> str:
    """The model a trial makes: its chain of steps once recorded, else its parameters for
    making it (a running trial's recipe may not be written yet)."""
    recipe = TrialRecord.from_trial(trial).recipe
    if recipe is not None:
        return made_key(recipe)
    return json.dumps({n: v for n, v in trial.params.items() if n not in DEPLOYED}, sort_keys=True, default=str)


def _rank(trial: FrozenTrial) -> tuple[int, int, float]:
    """Which trial of a model stands for it: a complete one before a pruned or running one,
    then a feasible one, then the fastest."""
    metrics = TrialRecord.from_trial(trial).metrics
    if trial.state != TrialState.COMPLETE or metrics is None:
        return (1 if trial.state == TrialState.PRUNED else 2, 1, 0.0)
    return (0, 0 if metrics.feasible else 1, float(metrics.get("latency_p50_ms", float("inf"))))


def model_view(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials as the sampler of how models are made sees them: one per trained model, the
    one with its best figures (fastest feasible way of deploying it, else fastest), and
    without the deployment parameters. A model deployed ten ways, or proposed again (a repeat),
    is one observation, told at its best, not ten. Trials without parameters (the baseline and
    the references, queued empty) tell it nothing and are left out."""
    groups: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if any(n not in DEPLOYED for n in t.params):
            groups.setdefault(_model_key(t), []).append(t)
    view = []
    for group in groups.values():
        best = copy.copy(min(group, key=lambda t: (_rank(t), t.number)))
        best.distributions = {n: d for n, d in best.distributions.items() if n not in DEPLOYED}
        best.params = {n: v for n, v in best.params.items() if n not in DEPLOYED}
        view.append(best)
    return sorted(view, key=lambda t: t.number)


# How often a proposal that makes a known model is drawn again (``BestDeployment``).
REDRAWS = 8
# The trials whose model counts as made: measured or gated, stopped early, or under way.
MADE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _makes(sample: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a proposal makes the model made with ``params``: it answers each of their
    questions the same way, so a space asking them in turn asks nothing else."""
    return bool(params) and all(n in sample and sample[n] == v for n, v in params.items())


class _ModelView:
    """The study, but its trials are ``model_view``'s: what ``BestDeployment`` hands its base
    sampler. Everything else (directions, storage, user attributes) is the study's."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None, use_cache: bool = False) -> list[FrozenTrial]:
        return model_view(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    def get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return model_view(self._study.get_trials(deepcopy=deepcopy, states=states))

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class BestDeployment(store.Delegating):
    """``base`` for how a model is made, seeing one trial per model (``model_view``); the
    study's winning deployment (``winning_deployment``) for the deployment parameters of a
    searched trial, once there is one. A parameter the winning way did not ask (XLA, when
    LiteRT won), and every deployment parameter before any way won, is ``base``'s, which has
    seen none of them (so it draws them from their prior: at random). A trial that has not said
    how its model is made when it is asked how to deploy it (a space of deployments alone)
    takes ``base``'s deployment too.

    With the study's ``space`` and its accuracy ``gate`` (``hopeless``), a proposal whose model
    takes a step the study has shown to break models is drawn again, as a repeat is."""

    def __init__(
        self,
        base: optuna.samplers.BaseSampler,
        seed: int | None = None,
        *,
        space: Callable[[Any], Recipe] | None = None,
        gate: Callable[[Quality, Mapping[str, Any]], float] | None = None,
    ) -> None:
        super().__init__(base)
        self._chosen: dict[int, dict[str, Any] | None] = {}
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._space, self._gate = space, gate

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._random.reseed_rng()

    def _deployment(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        if trial.number not in self._chosen:
            self._chosen[trial.number] = winning_deployment(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return self._chosen[trial.number] or {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(_ModelView(study), trial)  # type: ignore[arg-type]

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """``base``'s proposal of how to make the model, unless it makes a model the study has
        made (or is making) already: then ``base`` is asked again, up to ``REDRAWS`` times, and
        then a random proposal that makes a new model, if one of ``REDRAWS`` draws does.

        TPE in a small discrete space proposes its best point again and again: one study on the
        demo proposed the same channel-pruned model at every other trial from its 30th on. A
        repeat costs no budget, but it teaches nothing, and the random proposal that follows it
        takes a random deployment (the TensorFlow runtime, half the time)."""
        made = {n: d for n, d in search_space.items() if n not in DEPLOYED}
        view = _ModelView(study)
        sample = self.base.sample_relative(view, trial, made)  # type: ignore[arg-type]
        if not sample:
            return sample  # start-up: every parameter is drawn on its own, at random
        known = [t.params for t in view.get_trials(deepcopy=False, states=MADE) if t.number != trial.number]
        hopeless = self._hopeless(study)

        def wasted(sample: dict[str, Any]) -> bool:
            return any(_makes(sample, p) for p in known) or self._breaks(study, trial, sample, hopeless)

        for _ in range(REDRAWS):
            if not wasted(sample):
                return sample
            sample = self.base.sample_relative(view, trial, made)  # type: ignore[arg-type]
        for _ in range(REDRAWS):
            if not wasted(sample):
                return sample
            sample = {n: self._random.sample_independent(view, trial, n, d) for n, d in made.items()}  # type: ignore[arg-type]
        return sample

    def _hopeless(self, study: optuna.Study) -> list[dict[str, Any]]:
        baseline = study.user_attrs.get(store.BASELINE)
        if self._space is None or self._gate is None or not baseline:
            return []
        return hopeless_steps(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), baseline, self._gate)

    def _breaks(self, study: optuna.Study, trial: FrozenTrial, sample: dict[str, Any], hopeless: list[dict[str, Any]]) -> bool:
        """Whether the model ``sample`` makes (deployed the winning way, which decides
        questions such as QAT) takes a hopeless step."""
        if not hopeless or self._space is None:
            return False
        try:
            recipe = self._space(Replay({**sample, **self._deployment(study, trial)}, study))
        except (AutotuneError, ValueError, KeyError, TypeError):
            return False
        return isinstance(recipe, Recipe) and takes_one(recipe.to_dict()["steps"], hopeless)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        # Only a trial that has said how its model is made deploys at the winning way: in a
        # space of deployments alone (the quick space), or one that asks them first, the way
        # is what is searched, and the winner would repeat the references' trial of it.
        made = any(n not in DEPLOYED for n in trial.params)
        chosen = self._deployment(study, trial) if made else {}
        if param_name in chosen and _offered(param_distribution, chosen[param_name]):
            return chosen[param_name]
        return self.base.sample_independent(_ModelView(study), trial, param_name, param_distribution)  # type: ignore[arg-type]

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        self._chosen.pop(trial.number, None)
