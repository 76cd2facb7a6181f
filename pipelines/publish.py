"""Making an accepted batch CURRENT: build its feature snapshot aside, materialise it, then switch in one step.

The data DAG runs these steps as tasks after the gate (:func:`pipelines.validation.gate.gate`); ``shopflow data use``
runs them in one call (:func:`use`):

1. :func:`check_publishable`: the pipeline publishes only the batch the gate just accepted (``PENDING``) or the
   current one again. An older accepted batch landing again does not move ``CURRENT`` back behind the user's back:
   :class:`NotPublishableError` names ``shopflow data use``, the one explicit way back.
2. :func:`build`: the feature snapshot, built aside (:func:`pipelines.features.snapshot.build_snapshot`).
3. :func:`apply`: ``feast apply`` (definitions only; sources hold relative paths, so no snapshot is involved).
4. :func:`materialize`: the snapshot's newest values into the online store.
5. :func:`switch`: ``CURRENT`` := (batch, snapshot) in one ``os.replace``; ``PENDING`` cleared; history appended.

Killed at any point before 5, ``CURRENT`` still names the previous batch and *its* snapshot, so training reads a
consistent pair, and ``PENDING`` still names the new batch, so a plain rerun (``shopflow run --no-generate`` or the
data DAG) picks it up and finishes: every step is idempotent (a complete snapshot is reused, apply and materialise
rewrite the same values, switching to what is already current changes nothing).

The online store is materialised before the switch, on purpose: serving then has the new batch's values no later
than training does. The online store holds one value per entity, the last materialised; so between step 4 and 5
(and after a crash there, until the rerun) serving may already answer with the new batch's values while training
still joins the previous snapshot. That is harmless: serving always wants the newest values, and what must match
is the pair a training run reads (labels from CURRENT's batch, features from CURRENT's snapshot), which changes
only at step 5. Going back (``shopflow data use OLD``) materialises the old snapshot again, overwriting the values
of the entities it holds.

Steps 4 and 5 and :func:`use` take one lock (``data/.publish.lock``), and both re-check that their batch is still
the one to publish, so an explicit ``data use`` during a pipeline run is not undone by that run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import objectstore
from pipelines.errors import UserError
from pipelines.data import current as pointers
from pipelines.faults import fault_point
from pipelines.features import snapshot
from pipelines.paths import check_batch_id, file_lock

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)


class NotPublishableError(UserError, RuntimeError):
    """The batch may not become current this way (not accepted, or an older batch needing ``shopflow data use``)."""


def _publish_lock(settings: Settings):
    return file_lock(settings.home / "data" / ".publish.lock")


def _accepted(settings: Settings, batch_id: str) -> bool:
    return objectstore.pull_dir(settings, settings.batches_dir / check_batch_id(batch_id))


def accepted_batches(settings: Settings) -> list[str]:
    """Ids of the accepted batches, oldest acceptance first."""
    if objectstore.enabled(settings):  # production: the store has every accepted batch, this home maybe none
        stored = objectstore.list_dirs(settings, settings.batches_dir)
        return sorted(stored, key=lambda name: (stored[name], name))
    if not settings.batches_dir.is_dir():
        return []
    found = [p for p in settings.batches_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    return [p.name for p in sorted(found, key=lambda p: (p.stat().st_mtime, p.name))]


def check_publishable(settings: Settings, batch_id: str) -> None:
    """Whether the data pipeline may make ``batch_id`` current: it is ``PENDING``, or current already, or nothing is.

    Raises:
        NotPublishableError: the batch is not accepted, or it is an earlier accepted batch (validated again): the
            message says ``CURRENT`` stays and names ``shopflow data use``.
    """
    if not _accepted(settings, batch_id):
        raise NotPublishableError(f"batch {batch_id} is not accepted (validate it first: `shopflow validate "
                                  f"{batch_id}`)")
    current = pointers.read_current(settings)
    pending = pointers.read_pending(settings)
    if batch_id == pending or current is None or batch_id == current.batch_id:
        return
    raise NotPublishableError(
        f"batch {batch_id} was accepted before and is not the newest accepted batch; CURRENT stays at "
        f"{current.batch_id}" + (f" (and {pending} is pending)" if pending else "")
        + f". To go back to it: `shopflow data use {batch_id}`")


def build(settings: Settings, batch_id: str) -> str:
    """Step 2: the batch's feature snapshot, built aside (reused when complete); returns its id."""
    sid = snapshot.build_snapshot(settings, batch_id)
    fault_point("after_build")
    return sid


def apply(settings: Settings) -> None:
    """Step 3: register the Feast definitions (idempotent)."""
    from pipelines.features.store import apply as feast_apply

    feast_apply(settings)
    fault_point("after_apply")


def materialize(settings: Settings, batch_id: str, snapshot_id: str, explicit: bool = False) -> None:
    """Step 4: load the snapshot's newest values into the online store (before the switch, see the module doc)."""
    with _publish_lock(settings):
        _materialize_locked(settings, batch_id, snapshot_id, explicit)
    fault_point("after_materialize")


def _materialize_locked(settings: Settings, batch_id: str, snapshot_id: str, explicit: bool) -> None:
    from pipelines.features.store import materialize as feast_materialize

    if not explicit:
        check_publishable(settings, batch_id)
    _check_snapshot(settings, batch_id, snapshot_id)
    feast_materialize(settings, features=snapshot.snapshot_dir(settings, snapshot_id))


def switch(settings: Settings, batch_id: str, snapshot_id: str, reason: str, by: str | None = None,
           explicit: bool = False) -> pointers.Current:
    """Step 5: make (batch, snapshot) current in one write, clear ``PENDING``, record who, when and why.

    ``explicit`` (``shopflow data use``) may switch to any accepted batch and drops a pending one; the pipeline may
    switch only to what :func:`check_publishable` allows. Switching to what is current already changes nothing.
    """
    with _publish_lock(settings):
        return _switch_locked(settings, batch_id, snapshot_id, reason, by, explicit)


def _switch_locked(settings: Settings, batch_id: str, snapshot_id: str, reason: str, by: str | None,
                   explicit: bool) -> pointers.Current:
    _check_snapshot(settings, batch_id, snapshot_id)
    with pointers.pointer_lock(settings):
        if not explicit:
            check_publishable(settings, batch_id)
        before = pointers.read_current(settings)
        pending = pointers.read_pending(settings)
        if before is not None and (before.batch_id, before.snapshot_id) == (batch_id, snapshot_id):
            if pending is not None and (pending == batch_id or explicit):
                pointers.write_pending(settings, None)
            _record_switch_if_missing(settings, before)  # killed after the switch, before its history line
            log.info("Batch %s with snapshot %s is current already", batch_id, snapshot_id)
            return before
        fault_point("before_switch")
        new = pointers.Current(batch_id=batch_id, snapshot_id=snapshot_id, switched_at=pointers.now(),
                               by=by or pointers.actor(), reason=reason)
        pointers.write_current(settings, new)  # the switch: batch and features change together
        if pending is not None and (pending == batch_id or explicit):
            pointers.write_pending(settings, None)
        fault_point("after_switch")
        pointers.append_history(
            settings, "switch", by=new.by, batch_id=batch_id, snapshot_id=snapshot_id, reason=reason,
            switched_at=new.switched_at,
            previous_batch_id=before.batch_id if before else None,
            previous_snapshot_id=before.snapshot_id if before else None,
            dropped_pending=pending if pending not in (None, batch_id) and explicit else None)
    log.info("CURRENT is now batch %s with feature snapshot %s (was %s)", batch_id, snapshot_id,
             f"{before.batch_id}/{before.snapshot_id}" if before else "nothing")
    return new


def _record_switch_if_missing(settings: Settings, current: pointers.Current) -> None:
    switches = [e for e in pointers.read_history(settings) if e.get("event") == "switch"]
    last = switches[-1] if switches else {}
    if (last.get("batch_id"), last.get("snapshot_id"), last.get("switched_at")) != (
            current.batch_id, current.snapshot_id, current.switched_at) and current.switched_at:
        pointers.append_history(settings, "switch", by=current.by, batch_id=current.batch_id,
                                snapshot_id=current.snapshot_id, reason=current.reason,
                                recorded_late=True, switched_at=current.switched_at)


def _check_snapshot(settings: Settings, batch_id: str, snapshot_id: str) -> None:
    manifest = snapshot.read_manifest(settings, snapshot_id)
    if manifest["batch_id"] != batch_id:
        raise NotPublishableError(f"feature snapshot {snapshot_id} was built from batch {manifest['batch_id']}, "
                                  f"not {batch_id}")


def use(settings: Settings, batch_id: str, reason: str, by: str | None = None) -> dict[str, Any]:
    """``shopflow data use``: make an accepted batch current, e.g. go back to an earlier one.

    Builds (or reuses) its snapshot, applies, materialises it and switches, under the publish lock. A pending batch
    is dropped (the history says so): the next pipeline run must not undo this decision.

    Returns:
        ``{"batch_id", "snapshot_id", "previous", "dropped_pending", "changed"}``.

    Raises:
        NotPublishableError: the batch is not accepted (the message lists the accepted ones).
        InvalidIdError: ``batch_id`` is not a batch id.
    """
    check_batch_id(batch_id)
    if not _accepted(settings, batch_id):
        known = accepted_batches(settings)
        raise NotPublishableError(f"batch {batch_id} is not an accepted batch; accepted: "
                                  f"{', '.join(known) if known else 'none'}")
    with _publish_lock(settings):
        before = pointers.read_current(settings)
        pending = pointers.read_pending(settings)
        sid = build(settings, batch_id)
        apply(settings)
        _materialize_locked(settings, batch_id, sid, explicit=True)
        new = _switch_locked(settings, batch_id, sid, reason, by, explicit=True)
    return {"batch_id": batch_id, "snapshot_id": sid,
            "previous": f"{before.batch_id}" if before else None,
            "dropped_pending": pending if pending not in (None, batch_id) else None,
            "changed": before is None or (before.batch_id, before.snapshot_id) != (new.batch_id, new.snapshot_id)}


def status(settings: Settings) -> dict[str, Any]:
    """CURRENT, PENDING and the accepted batches, for ``shopflow data list``."""
    current = pointers.read_current(settings)
    return {"current": current.to_dict() if current else None, "pending": pointers.read_pending(settings),
            "accepted": accepted_batches(settings), "snapshots": snapshot.list_snapshots(settings),
            "features_dir": str(Path(settings.features_dir))}
