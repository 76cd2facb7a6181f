"""Where the home's durable files live in the production profile: S3-compatible object storage.

In the ``local`` profile the home *is* the store and every function here returns at once. In ``production`` the
home is a scratch cache (an ``emptyDir`` in a pod: each Airflow task and KFP component may start with an empty
one), and what one step leaves for another lives under ``settings.production.data_uri`` at the same relative path:
landing and accepted batches, quarantined batches, the hidden truth, feature snapshot manifests, and the
``CURRENT``/``PENDING``/history pointers. Readers fetch by id (``pull_dir(batches_dir / batch_id)``).

A folder is uploaded file by file and then marked complete (``<folder>/.complete``, written last); it is fetched
only when marked, into a hidden sibling that is renamed into place, so nobody sees half a folder. Pointer files are
single objects (S3 writes one object atomically), and the store's copy is authoritative for them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipelines.paths import confined

if TYPE_CHECKING:
    from pipelines.settings import Settings

COMPLETE = ".complete"


def enabled(settings: Settings) -> bool:
    """True when files must go through object storage (the production profile)."""
    return settings.profile == "production"


@functools.lru_cache(maxsize=8)
def _client_for(endpoint_url: str | None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url or None)


def client(settings: Settings):
    """A boto3 S3 client for the profile's endpoint (credentials from the usual AWS variables or role).

    The endpoint: ``SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL``, else MLflow's ``MLFLOW_S3_ENDPOINT_URL`` (one endpoint
    for artifacts and data), else boto3's own resolution (``AWS_ENDPOINT_URL_S3``, then AWS).
    """
    return _client_for(settings.production.s3_endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL"))


def _location(settings: Settings) -> tuple[str, str]:
    parsed = urlparse(settings.production.data_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"SHOPFLOW_PRODUCTION__DATA_URI: {settings.production.data_uri!r} is not s3://bucket/prefix")
    return parsed.netloc, parsed.path.strip("/")


def _key(settings: Settings, path: Path) -> tuple[str, str]:
    """Bucket and object key of a path inside the home."""
    bucket, prefix = _location(settings)
    rel = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(settings.home))).as_posix()
    return bucket, f"{prefix}/{rel}" if prefix else rel


def _objects(settings: Settings, bucket: str, prefix: str) -> list[dict]:
    pages = client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]


def push_dir(settings: Settings, path: Path) -> None:
    """Upload the folder ``path`` (inside the home) and mark it complete; objects it no longer has are removed."""
    if not enabled(settings):
        return
    bucket, key = _key(settings, path)
    s3 = client(settings)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != COMPLETE)
    with contextlib.suppress(Exception):  # a re-push: the old marker goes first, so no reader takes a mixed folder
        s3.delete_object(Bucket=bucket, Key=f"{key}/{COMPLETE}")
    wanted = {f"{key}/{p.relative_to(path).as_posix()}" for p in files}
    stale = [o["Key"] for o in _objects(settings, bucket, f"{key}/") if o["Key"] not in wanted]
    _delete_keys(settings, bucket, stale)
    for p in files:
        s3.upload_file(str(p), bucket, f"{key}/{p.relative_to(path).as_posix()}")
    s3.put_object(Bucket=bucket, Key=f"{key}/{COMPLETE}", Body=b"")


def pull_dir(settings: Settings, path: Path) -> bool:
    """Make the folder ``path`` (inside the home) present locally, fetching it if the store has it complete.

    Returns:
        Whether the folder is there now (locally it always is if it exists).
    """
    if path.is_dir() or not enabled(settings):
        return path.is_dir()
    bucket, key = _key(settings, path)
    objects = _objects(settings, bucket, f"{key}/")
    if not any(o["Key"] == f"{key}/{COMPLETE}" for o in objects):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".pull-{path.name}-"))
    try:
        for obj in objects:
            rel = obj["Key"][len(key) + 1:]
            if rel == COMPLETE:
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client(settings).download_file(bucket, obj["Key"], str(target))
        try:
            os.rename(tmp, path)
        except OSError:  # another reader of this home fetched it meanwhile
            if not path.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return True


def has_dir(settings: Settings, path: Path) -> bool:
    """Whether the store holds the folder ``path`` complete (local profile: whether it exists)."""
    if not enabled(settings):
        return path.is_dir()
    from botocore.exceptions import ClientError

    bucket, key = _key(settings, path)
    try:
        client(settings).head_object(Bucket=bucket, Key=f"{key}/{COMPLETE}")
    except ClientError:
        return False
    return True


def delete_dir(settings: Settings, path: Path) -> None:
    """Remove the folder ``path``'s objects (marker first, so no reader fetches it half-deleted)."""
    if not enabled(settings):
        return
    bucket, key = _key(settings, path)
    client(settings).delete_object(Bucket=bucket, Key=f"{key}/{COMPLETE}")
    _delete_keys(settings, bucket, [o["Key"] for o in _objects(settings, bucket, f"{key}/")])


def _delete_keys(settings: Settings, bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        client(settings).delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def list_dirs(settings: Settings, parent: Path) -> dict[str, datetime]:
    """Complete folders directly under ``parent`` in the store: ``{name: when it was marked complete}``."""
    if not enabled(settings):
        return {}
    bucket, key = _key(settings, parent)
    found = {}
    for obj in _objects(settings, bucket, f"{key}/"):
        parts = obj["Key"][len(key) + 1:].split("/")
        if len(parts) == 2 and parts[1] == COMPLETE:
            found[parts[0]] = obj["LastModified"]
    return found


def push_file(settings: Settings, path: Path) -> None:
    """Upload one file (a pointer) of the home; a missing file deletes the object."""
    if not enabled(settings):
        return
    bucket, key = _key(settings, path)
    if path.exists():
        client(settings).upload_file(str(path), bucket, key)
    else:
        client(settings).delete_object(Bucket=bucket, Key=key)


def pull_file(settings: Settings, path: Path) -> None:
    """Refresh one file (a pointer) of the home from the store, which is authoritative: absent there, absent here."""
    if not enabled(settings):
        return
    from botocore.exceptions import ClientError

    from pipelines.paths import atomic_write

    bucket, key = _key(settings, path)
    try:
        body = client(settings).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        if path.exists():
            confined(path, settings.home).unlink()
        return
    atomic_write(path, body.decode())


def ensure_bucket(settings: Settings, uri: str) -> None:
    """Create the bucket of an ``s3://`` URI if it does not exist (a fresh deployment, a test's endpoint)."""
    from botocore.exceptions import ClientError

    bucket = urlparse(uri).netloc
    s3 = client(settings)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
