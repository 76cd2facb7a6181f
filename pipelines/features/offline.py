"""Feast's offline store in the production profile: PostgreSQL, one schema per feature snapshot.

The local profile reads a snapshot's Parquet files through Feast's file offline store, with relative source paths
resolved against the snapshot's folder. Production keeps the same idea in PostgreSQL: the sources are tables with
unqualified names (``customer_rfm``...), each snapshot's tables live in their own schema (:func:`schema_name`), and
every store sets its connection's ``search_path`` to the snapshot it reads (Feast's ``db_schema``). So the registry
never changes when a snapshot is switched in, and a pinned training run keeps reading its own snapshot.

A snapshot is loaded in one transaction (PostgreSQL DDL is transactional): a crash leaves no half-loaded schema.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from pipelines.paths import SNAPSHOT_ID_PATTERN, check_snapshot_id

if TYPE_CHECKING:
    from pipelines.settings import Settings


def schema_name(snapshot_id: str) -> str:
    """PostgreSQL schema of a snapshot: readable, lower case, at most 63 bytes, distinct per id (hash suffix)."""
    sid = check_snapshot_id(snapshot_id)
    return f"fs_{re.sub(r'[^a-z0-9]', '_', sid.lower())[:40]}_{hashlib.sha256(sid.encode()).hexdigest()[:8]}"


def _connection(settings: Settings) -> dict[str, Any]:
    uri = urlparse(settings.production.postgres_uri)
    query = {k: v[-1] for k, v in parse_qs(uri.query).items()}
    return {"host": uri.hostname or "127.0.0.1", "port": uri.port or 5432,
            "database": unquote(uri.path.lstrip("/")) or "postgres", "user": unquote(uri.username or "postgres"),
            "password": unquote(uri.password or ""), "sslmode": query.get("sslmode", "prefer")}


def store_config(settings: Settings, features: Path) -> dict[str, Any]:
    """Feast ``offline_store`` config reading the snapshot whose folder is ``features`` (its name is the id)."""
    snapshot = features.name if re.fullmatch(SNAPSHOT_ID_PATTERN, features.name) else None
    return {"type": "postgres", **_connection(settings),
            "db_schema": schema_name(snapshot) if snapshot else "public", "min_conn": 1, "max_conn": 2}


def with_table_sources(objects: list) -> list:
    """The repository's objects with every file source replaced by a PostgreSQL table of the same name (and every
    feature view over it copied to read that table); entities and feature services are unchanged."""
    from feast import FeatureView, FileSource, PushSource
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

    def table(source):
        return PostgreSQLSource(name=source.name, table=source.name, timestamp_field=source.timestamp_field,
                                created_timestamp_column=source.created_timestamp_column,
                                field_mapping=source.field_mapping, description=source.description,
                                tags=source.tags, owner=source.owner)

    out = []
    for obj in objects:
        if isinstance(obj, PushSource) and isinstance(obj.batch_source, FileSource):
            obj = copy.copy(obj)  # its batch source is only where pushes would be logged offline
            obj.batch_source = table(obj.batch_source)
        elif isinstance(obj, FileSource):
            obj = table(obj)
        elif isinstance(obj, FeatureView) and isinstance(obj.batch_source, FileSource):
            view = copy.copy(obj)
            view.batch_source = table(obj.batch_source)
            obj = view
        out.append(obj)
    return out


def _engine(settings: Settings):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    uri = settings.production.postgres_uri
    for plain in ("postgresql://", "postgres://"):
        if uri.startswith(plain):
            uri = "postgresql+psycopg://" + uri[len(plain):]
    return create_engine(uri, poolclass=NullPool)


def _copy_rows(table, conn, keys, data_iter) -> None:
    """pandas ``to_sql`` method: PostgreSQL ``COPY`` (one round trip instead of one insert per row)."""
    import csv

    buf = io.StringIO()
    csv.writer(buf).writerows(data_iter)
    buf.seek(0)
    columns = ", ".join(f'"{k}"' for k in keys)
    with conn.connection.cursor() as cur:
        with cur.copy(f'COPY "{table.schema}"."{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)') as cp:
            cp.write(buf.getvalue())


def load_snapshot(settings: Settings, snapshot_id: str, files: dict[str, Path]) -> str:
    """Load a snapshot's feature tables (``{source name: parquet file}``) into its schema, replacing any earlier
    attempt, in one transaction. Returns the schema."""
    import pandas as pd

    schema = schema_name(snapshot_id)
    with _engine(settings).begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        for name, path in files.items():
            frame = pd.read_parquet(path)
            frame.to_sql(name, conn, schema=schema, index=False, method=_copy_rows)
    return schema


def drop_snapshot(settings: Settings, snapshot_id: str) -> None:
    """Drop a snapshot's schema (nothing if it is not there)."""
    with _engine(settings).begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema_name(snapshot_id)}" CASCADE')
