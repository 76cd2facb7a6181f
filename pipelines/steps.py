"""The pipeline steps, as plain functions of JSON-friendly arguments: Airflow tasks and KFP components call these.

Each step takes ids (batch, snapshot, model, version) and reads what it needs from the stores the settings point
at, so the two orchestrators run the same code. Errors in the input are :class:`pipelines.errors.UserError`s
(retrying cannot fix them: the orchestrators fail the step at once).

The data pipeline: :func:`validate` -> :func:`build_features` -> :func:`apply_features` -> :func:`materialize` ->
:func:`publish` (the switch of CURRENT). Training: :func:`train` -> :func:`gate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.settings import Settings, get_settings


class NoBatchError(UserError):
    """Nothing in landing and no CURRENT batch."""


def stage(batch_dir: Path, truth_dir: Path | None = None, settings: Settings | None = None) -> None:
    """A new landing batch (and its hidden truth) into the profile's stores: in production, object storage, where the
    data pipeline's tasks fetch it by id (truth first: a batch in landing always finds its truth); locally nothing."""
    from pipelines import objectstore

    s = settings or get_settings()
    if truth_dir is not None:
        objectstore.push_dir(s, truth_dir)
    objectstore.push_dir(s, batch_dir)


def validate(batch_id: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The GX gate on ``batch_id`` (default: the newest landing batch, else CURRENT); returns the report.

    Raises:
        pipelines.validation.gate.DataValidationError: the batch was quarantined.
        pipelines.publish.NotPublishableError: an earlier accepted batch (moving back needs `shopflow data use`).
        UserError: no batch, a bad id, a symlinked folder.
    """
    from pipelines.publish import check_publishable
    from pipelines.validation.gate import current_or_latest_batch, gate as gx_gate

    s = settings or get_settings()
    batch_id = batch_id if batch_id is not None else current_or_latest_batch(s)
    if batch_id is None:
        raise NoBatchError("no batch to validate: run `shopflow data generate` or `shopflow data import DIR`")
    report = gx_gate(batch_id, s)
    check_publishable(s, batch_id)
    return report.to_dict()


def build_features(batch_id: str, settings: Settings | None = None) -> str:
    """The batch's point-in-time feature snapshot, built aside (reused if complete); returns its id."""
    from pipelines.publish import build

    return build(settings or get_settings(), batch_id)


def apply_features(settings: Settings | None = None) -> None:
    """`feast apply` of the feature repository."""
    from pipelines.publish import apply

    apply(settings or get_settings())


def materialize(batch_id: str, snapshot_id: str, settings: Settings | None = None) -> None:
    """The snapshot's newest feature values into the online store."""
    from pipelines.publish import materialize as publish_materialize

    publish_materialize(settings or get_settings(), batch_id, snapshot_id)


def publish(batch_id: str, snapshot_id: str, reason: str = "data pipeline: newest accepted batch",
            settings: Settings | None = None) -> dict[str, Any]:
    """The switch: CURRENT := (batch, snapshot) in one write; returns the new CURRENT."""
    from pipelines.publish import switch

    return switch(settings or get_settings(), batch_id, snapshot_id, reason=reason).to_dict()


def train(model: str, overrides: dict[str, Any] | None = None, force: bool = False,
          settings: Settings | None = None) -> dict[str, Any]:
    """Train ``model`` on CURRENT and register it as challenger (see :func:`pipelines.training.train_model`)."""
    from pipelines.training import train_model

    return train_model(model, settings or get_settings(), overrides or {}, force)


def gate(model: str, version: str, overrides: dict[str, Any] | None = None,
         settings: Settings | None = None) -> dict[str, Any]:
    """The champion gate of a registered version (see :func:`pipelines.training.evaluate_and_promote`)."""
    from pipelines.training import evaluate_and_promote

    return evaluate_and_promote(model, settings or get_settings(), version, overrides or {})


def tune(model: str, trials: int, overrides: dict[str, Any] | None = None, settings: Settings | None = None,
         timeout: float | None = None) -> dict[str, Any]:
    """Tune ``model`` on its validation split before training (see :func:`pipelines.tuning.tune`); ``trials`` 0:
    nothing to do."""
    if trials <= 0:
        return {"model": model, "trials": 0}
    from pipelines.tuning import tune as run_tune

    return run_tune(model, settings or get_settings(), trials, timeout, overrides or {})
