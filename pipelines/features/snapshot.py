"""Feature snapshots: the feature tables of one batch, built aside and never changed afterwards.

Layout under ``settings.features_dir``::

    <snapshot_id>/<table>.parquet      one file per feature view (Feast's FileSource paths are these file names)
    <snapshot_id>/snapshot.json        batch id, feature code version, row counts; written last, before the rename
    .building-<snapshot_id>-<pid>/     a build in progress; a dead build's folder is removed by the next build

A snapshot id is ``<batch_id>-<8 hex digits of the feature code's hash>``: the same batch built by the same code gives
the same files, so a rerun reuses a complete snapshot, and changed feature code builds a new one beside the old.

Which snapshot a reader sees is decided per Feast store, not by a shared path: the sources' paths are relative and
Feast joins them with ``RepoConfig.repo_path``, which :func:`features_root` sets to the pinned snapshot
(``settings.feature_snapshot``), else the snapshot ``CURRENT`` names. Since ``CURRENT`` holds the batch id and the
snapshot id in one file, a reader can never pair one batch's labels with another batch's features.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import objectstore
from pipelines.data.current import now, read_current
from pipelines.faults import fault_point
from pipelines.paths import atomic_write, check_batch_id, check_snapshot_id, file_lock, move_tree, remove_tree

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "snapshot.json"
BUILDING_PREFIX = ".building-"


class NoFeatureSnapshotError(RuntimeError):
    """No feature snapshot to read: nothing was published yet, or ``CURRENT`` predates snapshots."""


def _code_files() -> tuple[Path, ...]:
    from pipelines.data import io
    from pipelines.features import build

    return Path(build.__file__), Path(io.__file__)


@functools.lru_cache(maxsize=1)
def feature_code_version() -> str:
    """Hash (8 hex digits) of the code that turns a raw batch into feature tables (reading + building)."""
    digest = hashlib.sha256()
    for path in _code_files():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def snapshot_id(batch_id: str) -> str:
    """The id of the snapshot that the current feature code builds from ``batch_id``."""
    return check_snapshot_id(f"{check_batch_id(batch_id)}-{feature_code_version()}")


def snapshot_dir(settings: Settings, snapshot: str) -> Path:
    """Folder of a snapshot (the id is checked before it becomes a path)."""
    return settings.features_dir / check_snapshot_id(snapshot)


def read_manifest(settings: Settings, snapshot: str) -> dict[str, Any]:
    """The snapshot's ``snapshot.json``.

    Raises:
        NoFeatureSnapshotError: the snapshot folder is missing or incomplete.
    """
    objectstore.pull_dir(settings, snapshot_dir(settings, snapshot))
    path = snapshot_dir(settings, snapshot) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise NoFeatureSnapshotError(f"feature snapshot {snapshot} is missing or incomplete ({path}); rerun the "
                                     "data pipeline (`shopflow run --no-generate`)") from None
    check_batch_id(data.get("batch_id"), field=f"{path}: batch_id")
    return data


def build_snapshot(settings: Settings, batch_id: str) -> str:
    """Build the feature snapshot of an accepted batch aside and return its id; a complete one is reused.

    The tables are written into a hidden folder, the manifest last, and the folder is renamed into place in one
    step, so a snapshot folder is always complete. Nothing a reader uses changes here.

    Raises:
        InvalidIdError: ``batch_id`` is not a batch id.
        FileNotFoundError: the batch is not accepted (no ``batches_dir/<batch_id>``).
        pipelines.data.io.BatchFormatError: a raw table is malformed.
    """
    from pipelines.features.build import build_feature_tables

    sid = snapshot_id(batch_id)
    target = snapshot_dir(settings, sid)
    batch_dir = settings.batches_dir / check_batch_id(batch_id)
    if not objectstore.pull_dir(settings, batch_dir):
        raise FileNotFoundError(f"batch {batch_id} is not accepted: no folder {batch_dir}")
    with file_lock(settings.features_dir / ".build.lock"):
        if objectstore.enabled(settings) and not objectstore.has_dir(settings, target) and target.exists():
            remove_tree(target, settings.features_dir)  # a leftover of this scratch home the stores never got
        if objectstore.pull_dir(settings, target) and (target / MANIFEST).exists():
            log.info("Feature snapshot %s exists; reusing it", sid)
            return sid
        # Under the lock no other build runs: any leftover build folder belongs to a process that died.
        for stale in settings.features_dir.glob(f"{BUILDING_PREFIX}*"):
            remove_tree(stale, settings.features_dir)
        if target.exists():  # a folder without its manifest cannot come from a rename; clear it anyway
            remove_tree(target, settings.features_dir)
        tmp = settings.features_dir / f"{BUILDING_PREFIX}{sid}-{os.getpid()}"
        paths = build_feature_tables(batch_dir, settings, out_dir=tmp)
        fault_point("during_build")
        rows = {name: _rows(path) for name, path in paths.items()}
        atomic_write(tmp / MANIFEST, json.dumps({
            "snapshot_id": sid, "batch_id": batch_id, "feature_code": feature_code_version(), "built_at": now(),
            "rows": rows}, indent=2) + "\n")
        move_tree(tmp, target, settings.features_dir)
        if objectstore.enabled(settings):
            # Production: Feast's offline store is PostgreSQL (one schema per snapshot, loaded in one transaction),
            # then the folder goes to object storage, whose completion marker says the snapshot exists.
            from pipelines.features.offline import load_snapshot

            load_snapshot(settings, sid, {name: target / path.name for name, path in paths.items()})
            objectstore.push_dir(settings, target)
    log.info("Feature snapshot %s built aside from batch %s (%s)", sid, batch_id,
             ", ".join(f"{k}={v}" for k, v in rows.items()))
    return sid


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def current_snapshot(settings: Settings) -> str:
    """Id of the feature snapshot that CURRENT's features come from (or the pinned one, see :func:`pinned`).

    This is what a training fingerprint should include: the same batch built by other feature code is another
    snapshot.

    Raises:
        NoFeatureSnapshotError: no batch is current yet, or ``CURRENT`` predates snapshots (rerun the data pipeline).
        InvalidIdError: ``CURRENT`` or the pin is not well-formed.
    """
    if settings.feature_snapshot is not None:
        return check_snapshot_id(settings.feature_snapshot, field="SHOPFLOW_FEATURE_SNAPSHOT")
    current = read_current(settings)
    if current is None:
        raise NoFeatureSnapshotError("no current batch: run `shopflow run` (or `shopflow validate` and "
                                     "`shopflow data use BATCH`) first")
    if current.snapshot_id is None:
        raise NoFeatureSnapshotError(f"CURRENT ({current.batch_id}) predates feature snapshots: rerun the data "
                                     "pipeline (`shopflow run --no-generate`) to build and switch its snapshot")
    return current.snapshot_id


def pinned(settings: Settings) -> Settings:
    """A copy of ``settings`` fixed to the current snapshot and its batch.

    ``current_batch_dir()``, ``training_frame`` and ``get_store`` of the copy keep reading that snapshot and batch
    even if a data run switches ``CURRENT`` meanwhile, so one training run never mixes two batches.
    """
    return settings.model_copy(update={"feature_snapshot": current_snapshot(settings)})


def current_batch_id(settings: Settings) -> str | None:
    """The batch readers use: the pinned snapshot's batch, else ``CURRENT``'s; ``None`` when there is none."""
    if settings.feature_snapshot is not None:
        return read_manifest(settings, current_snapshot(settings))["batch_id"]
    current = read_current(settings)
    return current.batch_id if current is not None else None


def current_batch_dir(settings: Settings) -> Path | None:
    """Folder of the batch in use (``CURRENT``, or the batch of a pinned snapshot); ``None`` if there is none."""
    batch_id = current_batch_id(settings)  # checked: what a pointer file holds never becomes a path unchecked
    if batch_id is None:
        return None
    path = settings.batches_dir / batch_id
    return path if objectstore.pull_dir(settings, path) else None


def features_root(settings: Settings) -> Path:
    """The folder Feast reads feature files from (``RepoConfig.repo_path``).

    The pinned snapshot, else the snapshot ``CURRENT`` names, else ``settings.features_dir`` itself: feature
    tables built there by hand (``build_feature_tables(batch, settings)``, tests) in a home that has never
    switched a snapshot in.
    """
    if settings.feature_snapshot is not None:
        return snapshot_dir(settings, current_snapshot(settings))
    current = read_current(settings)
    if current is not None and current.snapshot_id is not None:
        return snapshot_dir(settings, current.snapshot_id)
    return settings.features_dir


def list_snapshots(settings: Settings) -> list[str]:
    """Ids of the complete snapshots on disk (production: in object storage), sorted."""
    if objectstore.enabled(settings):
        return sorted(objectstore.list_dirs(settings, settings.features_dir))
    if not settings.features_dir.is_dir():
        return []
    return sorted(p.name for p in settings.features_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())
