"""MLflow plumbing: tracking setup per profile, registration, aliases and the champion/challenger gate."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pipelines.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings: Settings):
    """Point MLflow at the profile's tracking/registry store and return a client (no work at import)."""
    import mlflow

    if settings.profile == "local":
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_for(settings: Settings, model_name: str) -> str:
    """Id of the model's experiment (``shopflow-<model>``), created with the profile's artifact root."""
    import mlflow

    name = f"shopflow-{model_name}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(name, artifact_location=f"{settings.artifact_location}/{model_name}")


def find_version_by_fingerprint(client, model_name: str, fingerprint: str):
    """The registered version trained from exactly this data + params + code, if any (makes reruns idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return None
    for mv in versions:
        if mv.tags.get("shopflow.fingerprint") == fingerprint:
            return mv
    return None


def version_by_alias(client, model_name: str, alias: str):
    """The model version holding ``alias``, or ``None``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


@dataclass
class GateDecision:
    """Outcome of the champion/challenger comparison on the holdout."""

    promoted: bool
    reason: str
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    metric: str

    def to_dict(self) -> dict:
        return asdict(self)


def decide(spec, challenger_version: str, challenger_score: float, champion_version: str | None,
           champion_score: float | None, min_delta: float) -> GateDecision:
    """Promote when there is no champion, or the challenger beats it by more than ``min_delta``."""
    metric = spec.primary_metric
    if champion_version is None or champion_score is None:
        return GateDecision(True, "no champion yet", challenger_version, challenger_score, None, None, metric)
    if champion_version == challenger_version:
        return GateDecision(False, "challenger is already the champion", challenger_version, challenger_score,
                            champion_version, champion_score, metric)
    direction = "higher" if spec.higher_is_better else "lower"
    if spec.better(challenger_score, champion_score, min_delta):
        reason = (f"{metric} {challenger_score:.4f} beats champion v{champion_version} {champion_score:.4f} "
                  f"by more than {min_delta} ({direction} is better)")
        return GateDecision(True, reason, challenger_version, challenger_score, champion_version, champion_score,
                            metric)
    reason = (f"{metric} {challenger_score:.4f} does not beat champion v{champion_version} {champion_score:.4f} "
              f"by more than {min_delta} ({direction} is better)")
    return GateDecision(False, reason, challenger_version, challenger_score, champion_version, champion_score,
                        metric)


def registry_state(client, model_name: str) -> dict:
    """``{"versions": n, "champion": v, "challenger": v}`` of one registered model."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        versions = []
    state = {"versions": len(versions)}
    for alias in (CHAMPION, CHALLENGER):
        mv = version_by_alias(client, model_name, alias)
        state[alias] = str(mv.version) if mv else None
    return state
