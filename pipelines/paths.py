"""Ids that become paths, and the one guarded helper that deletes or moves folders.

Every id that names a folder (batch ids above all: CLI argument, DAG param, ``CURRENT`` pointer) is checked
against its format before it is joined onto a path, and every delete or move of a folder goes through
:func:`remove_tree` / :func:`move_tree`, which refuse anything that is not strictly inside the root they are given
(``SHOPFLOW_HOME`` or one of its folders), symlinks included. ``shopflow validate ..`` once deleted the whole home;
this module is why it cannot any more.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import UserError

BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A batch id: 1-64 letters, digits, ``-`` or ``_``, starting with a letter or digit. Batches the platform stores
are named by a 16-hex content hash; a folder dropped into ``landing/`` by hand may use any name of this form."""

_BATCH_ID = re.compile(BATCH_ID_PATTERN)

SNAPSHOT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}-[0-9a-f]{8}$"
"""A feature snapshot id: the batch id, ``-`` and 8 hex digits of the feature code's hash
(:func:`pipelines.features.snapshot.snapshot_id`)."""

_SNAPSHOT_ID = re.compile(SNAPSHOT_ID_PATTERN)


class InvalidIdError(UserError, ValueError):
    """An id does not have its format; the message names the field and the format, on one line."""


class UnsafePathError(UserError, ValueError):
    """A delete or move was asked for outside the folder it is confined to (or through a symlink)."""


def check_batch_id(value: object, field: str = "batch_id") -> str:
    """``value`` if it is a well-formed batch id.

    Raises:
        InvalidIdError: naming ``field``, when ``value`` is not a string of :data:`BATCH_ID_PATTERN` (e.g. ``..``,
            ``../data``, ``/some/dir``, ``a/b``, an empty string).
    """
    if not isinstance(value, str) or not _BATCH_ID.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidIdError(f"{field}: {shown} is not a batch id (1-64 letters, digits, '-' or '_', "
                             "starting with a letter or digit)")
    return value


def check_snapshot_id(value: object, field: str = "snapshot_id") -> str:
    """``value`` if it is a well-formed feature snapshot id (:data:`SNAPSHOT_ID_PATTERN`).

    Raises:
        InvalidIdError: naming ``field``, otherwise.
    """
    if not isinstance(value, str) or not _SNAPSHOT_ID.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidIdError(f"{field}: {shown} is not a feature snapshot id (a batch id, '-' and 8 hex digits)")
    return value


def confined(path: Path, root: Path) -> Path:
    """``path`` made absolute, after checking that it lies strictly inside ``root`` and is not a symlink.

    The parent folders are resolved (so ``root/x/../../etc`` and a symlinked parent that leads outside are
    caught); the last component itself must not be a symlink, since deleting or moving through one would act on
    its target or leave it dangling.

    Raises:
        UnsafePathError: when the path is ``root`` itself, outside it, or a symlink.
    """
    root_real = Path(os.path.realpath(root))
    path = Path(os.path.abspath(path))
    parent_real = Path(os.path.realpath(path.parent))
    candidate = parent_real / path.name
    if path.name in ("", ".", "..") or not candidate.is_relative_to(root_real) or candidate == root_real:
        raise UnsafePathError(f"refusing to touch {path}: not inside {root}")
    if candidate.is_symlink():
        raise UnsafePathError(f"refusing to touch {path}: it is a symbolic link")
    return candidate


def remove_tree(path: Path, root: Path) -> bool:
    """Delete the folder (or file) ``path``, which must lie strictly inside ``root``.

    Returns:
        ``True`` if something was deleted, ``False`` if nothing was there.

    Raises:
        UnsafePathError: see :func:`confined`.
    """
    target = confined(path, root)
    if target.is_dir():
        shutil.rmtree(target)
        return True
    if target.exists():
        target.unlink()
        return True
    return False


def move_tree(src: Path, dst: Path, root: Path) -> Path:
    """Move ``src`` to ``dst`` (a rename on one file system); both must lie strictly inside ``root``.

    Raises:
        UnsafePathError: see :func:`confined`.
        FileExistsError: when ``dst`` already exists (nothing is merged or overwritten).
    """
    source, target = confined(src, root), confined(dst, root)
    if target.exists():
        raise FileExistsError(f"cannot move {source} to {target}: the target exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(str(source), str(target)))


def atomic_write(path: Path, text: str) -> None:
    """Replace the file ``path`` by ``text`` in one step: temp file in the same folder, fsync, ``os.replace``.

    Readers (and a process killed at any instant) see the old content or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """An inter-process ``flock`` on ``path`` for the ``with`` block (exclusive, or shared for readers).

    The kernel drops the lock when its process dies, so a killed run never leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
