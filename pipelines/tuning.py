"""Hyper-parameter tuning of one family on its validation split (``shopflow tune MODEL --trials N``).

Optuna searches the space the family declares (``ModelSpec.search_space``); the study lives in MLflow through
``mlflow.optuna.MlflowStorage`` (the study is a parent run, each trial a child run). A trial fits the family as
training does and scores the family's own model on the *validation* split (``Evaluation.selection["model"]``), so
the holdout that the champion gate judges on is never used for tuning. The best parameters are stored on the
registered model (tag ``shopflow.tuned_params``): training starts from them (explicit ``--set`` overrides win), and
``shopflow report`` shows them.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any

from pipelines import tracking
from pipelines.errors import UserError
from pipelines.registry import get_spec
from pipelines.settings import Settings

log = logging.getLogger(__name__)

class TuningError(UserError):
    """The family declares no search space, or no trial finished."""


def tune(model_name: str, settings: Settings, trials: int, timeout: float | None = None,
         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search the family's space for ``trials`` trials (or ``timeout`` seconds) and store the best parameters.

    Args:
        model_name: A family from the registry.
        settings: Active settings.
        trials: Number of trials (at least 1).
        timeout: Stop starting new trials after this many seconds.
        overrides: Fixed parameters (validated), kept in every trial and in the stored result.

    Returns:
        The study's summary: best parameters and validation score, the default's score, trials run, run id.
    """
    import mlflow
    import optuna
    from mlflow.optuna.storage import MlflowStorage

    from pipelines.training import data_context, pin_current
    from pipelines.utils import seed_everything

    spec = get_spec(model_name)
    if spec.search_space is None:
        raise TuningError(f"{spec.name} declares no search space (ModelSpec.search_space); nothing to tune")
    if trials < 1:
        raise TuningError(f"--trials must be at least 1, got {trials}")
    parsed = spec.parse_params(overrides or {})  # fail before any work on a bad override
    fixed = {k: getattr(parsed, k) for k in (overrides or {})}  # typed ("60" -> 60) for storage
    settings = pin_current(settings)
    ctx = data_context(settings)
    client = tracking.configure(settings)
    experiment_id = tracking.experiment_for(settings, spec.name)
    direction = "maximize" if spec.higher_is_better else "minimize"
    datasets: dict[str, Any] = {}

    def validation_score(values: dict[str, Any]) -> float:
        params = spec.parse_params({**values, **fixed})
        seed_everything(params.seed)
        # Data preparation may depend on parameters (e.g. a horizon): prepared once per distinct preparation.
        key = json.dumps(params.model_dump(), sort_keys=True, default=str)
        dataset = datasets.get(key) or datasets.setdefault(key, spec.prepare(ctx, params))
        model = spec.fit(dataset, params)
        score = spec.evaluate(model, dataset, params).selection.get("model")
        if score is None or not math.isfinite(score):
            raise TuningError(f"{spec.name}: no finite validation score of the model (Evaluation.selection)")
        return float(score)

    def objective(trial: optuna.Trial) -> float:
        return validation_score(spec.search_space(trial))

    storage = MlflowStorage(experiment_id=experiment_id)
    study_name = f"tune-{spec.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    sampler = optuna.samplers.TPESampler(seed=spec.parse_params(fixed).seed)
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, sampler=sampler)
    study_run = str(storage.get_study_id_from_name(study_name))
    t0 = time.perf_counter()
    try:
        default_score = validation_score({})
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=(ValueError, RuntimeError))
        storage.flush_all_batches()
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            raise TuningError(f"{spec.name}: no trial finished ({len(study.trials)} tried)")
    except BaseException:
        client.set_terminated(study_run, "KILLED" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "FAILED")
        raise
    best = study.best_trial
    better = best.value > default_score if spec.higher_is_better else best.value < default_score
    # Keep the defaults when the search found nothing better on validation.
    chosen = {**best.params, **fixed} if better else dict(fixed)
    summary = {
        "model": spec.name, "metric": spec.primary_metric, "direction": direction, "study": study_name,
        "trials": len(study.trials), "completed": len(done), "seconds": round(time.perf_counter() - t0, 1),
        "default_validation": default_score, "best_validation": float(best.value), "best_params": best.params,
        "stored_params": chosen, "improved": bool(better), "experiment_id": experiment_id, "run_id": study_run,
        "batch": ctx.batch_id,
    }
    client.log_metric(study_run, "default_validation", default_score)
    client.log_metric(study_run, "best_validation", float(best.value))
    client.set_tag(study_run, "shopflow.tuning", json.dumps(summary, default=str))
    client.set_terminated(study_run, "FINISHED")
    if not client.search_registered_models(f"name='{spec.name}'"):
        client.create_registered_model(spec.name)
    client.set_registered_model_tag(spec.name, tracking.TUNED_TAG, json.dumps(chosen, sort_keys=True, default=str))
    log.info("%s: best validation %s %.4f vs default %.4f after %d trials; stored %s", spec.name,
             spec.primary_metric, best.value, default_score, len(done), chosen)
    return summary
