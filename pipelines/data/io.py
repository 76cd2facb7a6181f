"""Reading and writing raw batches (one Parquet or CSV file per table) with the schema's dtypes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from pipelines.data.schema import TABLES, TableSchema


class BatchFormatError(ValueError):
    """A batch folder cannot be read as ShopFlow tables; the message lists every problem found."""


def table_path(batch_dir: Path, table: str) -> Path | None:
    """The file of ``table`` in ``batch_dir`` (Parquet preferred over CSV), or ``None``."""
    for ext in (".parquet", ".csv"):
        path = batch_dir / f"{table}{ext}"
        if path.exists():
            return path
    return None


def coerce(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Cast the schema's columns to their kinds (UTC timestamps, float64, Int64, string).

    Raises:
        BatchFormatError: naming each column that is missing or cannot be converted.
    """
    problems: list[str] = []
    missing = [c for c in schema.column_names if c not in df.columns]
    if missing:
        problems.append(f"{schema.name}: missing column(s) {', '.join(missing)}")
    out = df.copy()
    for col in schema.columns:
        if col.name not in out.columns:
            continue
        s = out[col.name]
        try:
            if col.kind == "timestamp":
                out[col.name] = pd.to_datetime(s, utc=True, errors="raise")
            elif col.kind == "float":
                out[col.name] = pd.to_numeric(s, errors="raise").astype("float64")
            elif col.kind == "int":
                num = pd.to_numeric(s, errors="raise")
                if (num.dropna() % 1 != 0).any():
                    raise ValueError("non-integer values")
                out[col.name] = num.astype("Int64")
            else:
                out[col.name] = s.astype("string")
        except (ValueError, TypeError) as exc:
            problems.append(f"{schema.name}.{col.name}: cannot read as {col.kind} ({exc})")
    if problems:
        raise BatchFormatError("; ".join(problems))
    return out


def read_table(batch_dir: Path, table: str) -> pd.DataFrame:
    """Read one table of a batch with the schema's dtypes.

    Raises:
        BatchFormatError: if the file is missing, unreadable or does not fit the schema.
    """
    schema = TABLES[table]
    path = table_path(batch_dir, table)
    if path is None:
        raise BatchFormatError(f"{table}: no {table}.parquet or {table}.csv in {batch_dir}")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a readable report
        raise BatchFormatError(f"{table}: cannot read {path.name} ({type(exc).__name__}: {exc})") from exc
    return coerce(df, schema)


def read_batch(batch_dir: Path) -> dict[str, pd.DataFrame]:
    """All tables of a batch; collects the problems of every table into one error."""
    tables, problems = {}, []
    for name in TABLES:
        try:
            tables[name] = read_table(batch_dir, name)
        except BatchFormatError as exc:
            problems.append(str(exc))
    if problems:
        raise BatchFormatError("; ".join(problems))
    return tables


def write_table(df: pd.DataFrame, batch_dir: Path, table: str) -> Path:
    """Write ``df`` as ``<table>.parquet`` in ``batch_dir``."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    path = batch_dir / f"{table}.parquet"
    df.to_parquet(path, index=False)
    return path


def batch_hash(batch_dir: Path) -> str:
    """Content hash of a batch (tables and images), used as its id and as the data snapshot hash."""
    digest = hashlib.sha256()
    for path in sorted(p for p in batch_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(batch_dir).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
