"""Airflow's ``kfp`` training backend: submit a family's compiled training pipeline to a KFP API server, and read
its state, so the Airflow task that waits does not hold a worker slot (a sensor in reschedule mode polls
:func:`run_state`).

Not exercised here (no cluster): the calls are the KFP SDK's ``Client.create_run_from_pipeline_package`` and
``Client.get_run``; tests check the package submitted is the compiled pipeline and the arguments are right.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.settings import Settings

DONE = {"SUCCEEDED", "SKIPPED"}
FAILED = {"FAILED", "CANCELED", "CANCELING"}


class KfpNotConfigured(UserError):
    """``SHOPFLOW_KFP__HOST`` is not set."""


class KfpUnreachable(RuntimeError):
    """The KFP API did not answer (may be transient, so not a :class:`UserError`: retries are allowed)."""


def client(settings: Settings):
    """A KFP client of the configured API server.

    Raises:
        KfpNotConfigured: without ``SHOPFLOW_KFP__HOST``.
        KfpUnreachable: when the server does not answer its health check (one line naming host and reason).
    """
    import logging
    import warnings

    import kfp

    if not settings.kfp.host:
        raise KfpNotConfigured("the kfp training backend needs SHOPFLOW_KFP__HOST (the KFP API endpoint)")
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    try:  # the client checks the server's /healthz when it is built; its retries would log one warning each
        pool_log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This client only works with Kubeflow Pipeline v2", FutureWarning)
            return kfp.Client(host=settings.kfp.host, namespace=settings.kfp.namespace)
    except Exception as exc:  # urllib3, kfp_server_api and auth errors alike: say which server, not a traceback
        reason = str(getattr(exc, "reason", None) or exc).splitlines()[0]
        raise KfpUnreachable(f"cannot reach the KFP API at {settings.kfp.host}: {reason}") from None
    finally:
        pool_log.setLevel(level)


def run_arguments(batch_id: str, overrides: dict[str, Any] | None, force: bool) -> dict[str, Any]:
    """The pipeline parameters of a training run (same names as the compiled pipeline's inputs)."""
    return {"batch_id": batch_id, "overrides_json": json.dumps(overrides or {}, sort_keys=True), "force": bool(force)}


def submit_training(settings: Settings, model: str, batch_id: str, overrides: dict[str, Any] | None = None,
                    force: bool = False, kfp_client=None) -> dict[str, str]:
    """Compile ``model``'s training pipeline and start a run of it; returns its id and URL."""
    from kfp import compiler

    from pipelines.kubeflow.pipelines import training_pipeline

    kfp_client = kfp_client or client(settings)
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / f"train_{model}.yaml"
        compiler.Compiler().compile(training_pipeline(settings, model), str(package))
        result = kfp_client.create_run_from_pipeline_package(
            str(package), arguments=run_arguments(batch_id, overrides, force),
            run_name=f"shopflow-train-{model}-{batch_id or 'current'}", experiment_name=settings.kfp.experiment,
            namespace=settings.kfp.namespace, enable_caching=False)
    run_id = str(result.run_id)
    return {"run_id": run_id, "url": f"{settings.kfp.host.rstrip('/')}/#/runs/details/{run_id}"}


def run_state(settings: Settings, run_id: str, kfp_client=None) -> str:
    """``SUCCEEDED``, ``FAILED``, ``RUNNING``... of a submitted run."""
    kfp_client = kfp_client or client(settings)
    return str(kfp_client.get_run(run_id).state)
