"""Which accepted batch is in use: the ``CURRENT`` and ``PENDING`` pointers and the data history.

* ``data/CURRENT``: JSON ``{"batch_id", "snapshot_id", "switched_at", "by", "reason"}``, the batch training reads
  and the feature snapshot built from it. It is replaced in one ``os.replace``, so both ids change together: that
  write is the one switch of the data pipeline (:func:`pipelines.publish.switch`). A file holding a plain batch id
  (written before feature snapshots existed) reads as that batch without a snapshot; the next data run rewrites it.
* ``data/PENDING``: the newest accepted batch whose features are not current yet. The gate writes it before it
  accepts a batch and the switch clears it, so a rerun after a crash finishes publishing that batch.
* ``data/history.jsonl``: one JSON line per acceptance and per switch, with when, by whom and why.

Every id read from these files is checked before it is used (:mod:`pipelines.paths`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import objectstore
from pipelines.paths import InvalidIdError, atomic_write, check_batch_id, check_snapshot_id, file_lock

if TYPE_CHECKING:
    from pipelines.settings import Settings


@dataclass(frozen=True)
class Current:
    """What ``CURRENT`` holds. ``snapshot_id`` is ``None`` only for a pointer written before feature snapshots."""

    batch_id: str
    snapshot_id: str | None
    switched_at: str = ""
    by: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now() -> str:
    """The current UTC time, ISO 8601 to the second (history and pointers)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def actor() -> str:
    """Who acts: ``SHOPFLOW_ACTOR`` if set (CI, Airflow), else ``user@host``."""
    if os.environ.get("SHOPFLOW_ACTOR"):
        return os.environ["SHOPFLOW_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def pointer_lock(settings: Settings):
    """Serialises writes of CURRENT, PENDING and the history (short sections; readers need no lock)."""
    return file_lock(settings.home / "data" / ".pointers.lock")


def read_current(settings: Settings) -> Current | None:
    """``CURRENT``, or ``None`` when no batch has been made current yet.

    Raises:
        InvalidIdError: the file holds something that is not a batch id / snapshot id (a tampered pointer).
    """
    path = settings.current_pointer
    objectstore.pull_file(settings, path)  # production: the store's pointer is authoritative
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.startswith("{"):
        return Current(batch_id=check_batch_id(text, field=str(path)), snapshot_id=None)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidIdError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidIdError(f"{path}: expected a JSON object")
    snapshot = data.get("snapshot_id")
    return Current(
        batch_id=check_batch_id(data.get("batch_id"), field=f"{path}: batch_id"),
        snapshot_id=None if snapshot is None else check_snapshot_id(snapshot, field=f"{path}: snapshot_id"),
        switched_at=str(data.get("switched_at", "")),
        by=str(data.get("by", "")),
        reason=str(data.get("reason", "")),
    )


def write_current(settings: Settings, current: Current) -> None:
    """Replace ``CURRENT`` in one step (callers hold :func:`pointer_lock`)."""
    check_batch_id(current.batch_id)
    if current.snapshot_id is not None:
        check_snapshot_id(current.snapshot_id)
    atomic_write(settings.current_pointer, json.dumps(current.to_dict(), indent=2) + "\n")
    objectstore.push_file(settings, settings.current_pointer)


def read_pending(settings: Settings) -> str | None:
    """The accepted batch waiting to become current, or ``None``."""
    path = settings.pending_pointer
    objectstore.pull_file(settings, path)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return check_batch_id(text, field=str(path)) if text else None


def write_pending(settings: Settings, batch_id: str | None) -> None:
    """Set (or with ``None`` clear) ``PENDING`` (callers hold :func:`pointer_lock`)."""
    if batch_id is None:
        settings.pending_pointer.unlink(missing_ok=True)
    else:
        atomic_write(settings.pending_pointer, check_batch_id(batch_id) + "\n")
    objectstore.push_file(settings, settings.pending_pointer)


def append_history(settings: Settings, event: str, **fields: Any) -> dict[str, Any]:
    """Append one line ``{"at", "event", "by", ...fields}`` to the data history; returns it."""
    entry = {"at": now(), "event": event, "by": fields.pop("by", None) or actor(), **fields}
    path = settings.data_history
    path.parent.mkdir(parents=True, exist_ok=True)
    objectstore.pull_file(settings, path)
    with open(path, "a") as fh:
        fh.write(json.dumps(entry, sort_keys=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    objectstore.push_file(settings, path)
    return entry


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """Every history entry, oldest first (a torn last line from a killed writer is skipped)."""
    path: Path = settings.data_history
    objectstore.pull_file(settings, path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
