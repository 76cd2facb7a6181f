"""MLflow plumbing: tracking setup per profile, registration, aliases and the champion/challenger gate."""

from __future__ import annotations

import json
import logging

from pipelines.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings: Settings):
    """Point MLflow at the profile's tracking/registry store and return a client (no work at import)."""
    import mlflow

    # Creating or migrating the store's tables is routine, not news on every first command of a home.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    if settings.profile == "local":
        settings.home.mkdir(parents=True, exist_ok=True)
    elif settings.production.s3_endpoint_url:
        # MLflow's S3 artifact repository (and `bentoml serve`, Airflow tasks: children inherit it) reads the
        # endpoint from the environment only.
        import os

        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.production.s3_endpoint_url
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    with _store_creation_lock(settings.tracking_uri):
        client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        client.search_registered_models(max_results=1)  # the registry store: same file, its own engine
    return client


def _store_creation_lock(uri: str):
    """Create (or migrate) a SQLite store's tables in one process at a time.

    MLflow builds the store in ``MlflowClient()`` and migrates a new database then; two processes doing that at
    once (a run's Airflow task and a CLI command, or two tasks) both run the migrations and one fails (``table
    _alembic_tmp_... already exists``). Once one process made the tables under this inter-process lock, every
    later use in any process finds them in place. Only SQLite: the local profile's processes share one machine.
    """
    import contextlib
    from pathlib import Path

    from pipelines.paths import file_lock

    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    db = Path(uri.removeprefix("sqlite:///"))
    return file_lock(db.with_name(db.name + ".lock"))


def experiment_for(settings: Settings, model_name: str) -> str:
    """Id of the model's experiment (``shopflow-<model>``), with the profile's artifact root.

    An experiment keeps the artifact location it was created with; one created under another root (an earlier
    configuration, e.g. an ``s3://`` bucket that was given up) is renamed aside to ``shopflow-<model>@<its
    root>`` (its runs and registered versions are kept) and a new one is created, so a changed
    ``artifact_uri`` never sends new runs to the old location.
    """
    import mlflow

    name = f"shopflow-{model_name}"
    location = f"{settings.artifact_location}/{model_name}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None and exp.artifact_location.rstrip("/") == location.rstrip("/"):
        if exp.lifecycle_stage == "deleted":
            mlflow.MlflowClient().restore_experiment(exp.experiment_id)
        return exp.experiment_id
    if exp is not None:
        aside = f"{name}@{exp.artifact_location.rstrip('/').rsplit('/', 1)[0]}"
        log.warning("experiment %s stores artifacts at %s, not %s: renamed to %r, new runs go to a new one",
                    name, exp.artifact_location, location, aside)
        client = mlflow.MlflowClient()
        stale = client.get_experiment_by_name(aside)
        if stale is not None:  # the same root was given up before: keep that one's name unique too
            aside = f"{aside}#{exp.experiment_id}"
        client.rename_experiment(exp.experiment_id, aside)
    return mlflow.create_experiment(name, artifact_location=location)


COMPLETE_TAG = "shopflow.fingerprint"
"""Set on a model version as the very last step of its registration: a version without it never completed (a
crash or kill between ``register_model`` and the end) and is dropped by the next training of that model."""


def _versions(client, model_name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return []


def find_version_by_fingerprint(client, model_name: str, fingerprint: str):
    """The completed version trained from exactly this data + features + params + code, if any (makes reruns
    idempotent). Versions whose registration never completed are not considered."""
    for mv in _versions(client, model_name):
        if mv.tags.get(COMPLETE_TAG) == fingerprint:
            return mv
    return None


def process_tags() -> dict[str, str]:
    """Who runs a training (host and pid): lets the next run tell a crashed run from a live one."""
    import os
    import socket

    return {"shopflow.host": socket.gethostname(), "shopflow.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_interrupted_runs(client, experiment_id: str) -> list[str]:
    """End as KILLED the RUNNING runs of this host whose process is gone (a kill -9 leaves them RUNNING).

    Runs of other hosts (other pods) are left alone: their liveness cannot be checked from here.

    Returns:
        The ids of the runs ended.
    """
    import socket

    host = socket.gethostname()
    reaped = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get("shopflow.pid", "")
        if tags.get("shopflow.host") == host and pid.isdigit() and not _alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            reaped.append(run.info.run_id)
    if reaped:
        log.warning("ended %d interrupted run(s) as KILLED: %s", len(reaped), ", ".join(reaped))
    return reaped


def drop_incomplete_versions(client, model_name: str) -> list[str]:
    """Delete the versions whose registration never completed (no :data:`COMPLETE_TAG`), unless their run is still
    running in a live process. Returns the deleted versions."""
    dropped = []
    for mv in _versions(client, model_name):
        if COMPLETE_TAG in mv.tags:
            continue
        try:
            status = client.get_run(mv.run_id).info.status if mv.run_id else "FAILED"
        except Exception:  # noqa: BLE001 - a version whose run is gone is incomplete too
            status = "FAILED"
        if status == "RUNNING":
            continue
        client.delete_model_version(model_name, mv.version)
        dropped.append(str(mv.version))
    if dropped:
        log.warning("%s: deleted incomplete version(s) %s (their registration was interrupted)", model_name,
                    ", ".join(dropped))
    return dropped


def load_units(client, run_id: str, exclude: str | None = None) -> dict:
    """The per-unit holdout frames logged by a training run (``holdout/<name>.parquet``), keyed by name."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, "holdout", tmp)
        except Exception:  # noqa: BLE001 - a run without per-unit results has no baselines to compare
            return {}
        return {p.stem: pd.read_parquet(p) for p in sorted(Path(local).glob("*.parquet")) if p.stem != exclude}


def version_by_alias(client, model_name: str, alias: str):
    """The model version holding ``alias``, or ``None``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def registry_state(client, model_name: str) -> dict:
    """``{"versions": n, "champion": v, "challenger": v}`` of one registered model."""
    state = {"versions": len(_versions(client, model_name))}
    for alias in (CHAMPION, CHALLENGER):
        mv = version_by_alias(client, model_name, alias)
        state[alias] = str(mv.version) if mv else None
    return state


TUNED_TAG = "shopflow.tuned_params"
"""Registered-model tag holding the parameters ``shopflow tune`` chose (JSON)."""


def tuned_params(client, model_name: str) -> dict:
    """The stored best parameters of ``model_name`` (empty if it was never tuned, or is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        raw = client.get_registered_model(model_name).tags.get(TUNED_TAG)
    except MlflowException:
        return {}
    return json.loads(raw) if raw else {}
