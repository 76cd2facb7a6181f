"""Reading and writing raw batches (one Parquet or CSV file per table) with the schema's dtypes.

A stored batch is immutable and named by its content hash: :func:`store_batch` writes the tables (and any
images) into a hidden temporary folder next to the destination, hashes it, and renames it to
``<landing_dir>/<batch_id>``. Readers therefore never see a half-written batch; folders whose name starts with
``.`` are work in progress and must be ignored.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data.attributes import extra_columns, typed
from pipelines.data.schema import ALL_TABLES, IMPORT_TABLES, TableSchema
from pipelines.paths import remove_tree

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 3
"""How many offending values a format problem quotes."""


class BatchFormatError(ValueError):
    """A batch folder cannot be read as ShopFlow tables; the message lists every problem found.

    Args:
        problems: One problem (a string) or several; each names the table and, where it applies, the column.
        header: Optional first line of the message (e.g. which folder failed); problems are then listed one a
            line below it. Without a header the message is the problems joined by ``"; "``.

    Attributes:
        problems: The individual problems, so callers can merge the errors of several tables.
    """

    def __init__(self, problems: str | Iterable[str], header: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        if header is None:
            message = "; ".join(self.problems)
        else:
            message = "\n".join([header, *(f"  - {p}" for p in self.problems)])
        super().__init__(message)


def table_path(batch_dir: Path, table: str) -> Path | None:
    """The file of ``table`` in ``batch_dir`` (Parquet preferred over CSV), or ``None``."""
    for ext in (".parquet", ".csv"):
        path = batch_dir / f"{table}{ext}"
        if path.exists():
            return path
    return None


def _examples(raw: pd.Series, bad: pd.Series) -> str:
    """``row 3: 'x', row 7: 'y'`` for the first offending values (rows counted from 1, header excluded)."""
    positions = np.flatnonzero(bad.to_numpy(dtype=bool))[:MAX_EXAMPLES]
    return ", ".join(f"row {i + 1}: {raw.iloc[i]!r}" for i in positions)


def _present(s: pd.Series) -> pd.Series:
    """Cells holding a value: not null and not blank (blank CSV cells mean null)."""
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        return (s.notna() & (s.astype("string").str.strip() != "")).fillna(False).astype(bool)
    return s.notna()


def _convert(s: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Convert ``s`` to ``kind``; returns the converted series and a mask of values that could not be read."""
    present = _present(s)
    if kind == "timestamp":
        if pd.api.types.is_datetime64_any_dtype(s):
            out = pd.to_datetime(s, utc=True)
        elif pd.api.types.is_numeric_dtype(s):
            # Numbers would silently be taken as nanoseconds since 1970: refuse them.
            return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]"), present
        else:
            # Strict ISO 8601 (naive times are UTC): guessing formats like 01/02/2024 would swap days and months.
            text = s.astype("string").str.strip().where(present)
            out = pd.to_datetime(text.astype(object), utc=True, format="ISO8601", errors="coerce")
        out = out.astype("datetime64[ns, UTC]")
        return out, present & out.isna()
    if kind in ("float", "int"):
        is_text = s.dtype == object or isinstance(s.dtype, pd.StringDtype)
        values = s.astype("string").str.strip().where(present).astype(object) if is_text else s
        num = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = present & num.isna()
        if kind == "float":
            return num, bad
        fractional = num.notna() & (num % 1 != 0)
        num = num.where(~fractional)
        return num.astype("Int64"), bad | fractional
    out = s.astype("string")
    return out, pd.Series(False, index=s.index)


def coerce(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Cast the schema's columns to their kinds (UTC timestamps, float64, Int64, string).

    Timestamps given as text must be ISO 8601 (``2024-03-01``, ``2024-03-01T12:30:00Z``, ``...+02:00``); naive
    times are taken as UTC. Blank cells are nulls. Columns not in the schema are kept unchanged.

    Raises:
        BatchFormatError: naming each column that is missing or holds values that cannot be converted, with a
            few example rows.
    """
    problems: list[str] = []
    for col in schema.columns:
        if col.name not in df.columns and not col.optional:
            problems.append(f"{schema.name}.{col.name}: missing column")
    out = df.copy()
    for col in schema.columns:
        if col.name not in out.columns:
            if col.optional:
                out[col.name] = _convert(pd.Series(pd.NA, index=out.index, dtype="string"), col.kind)[0]
            continue
        raw = out[col.name]
        converted, bad = _convert(raw, col.kind)
        if bad.any():
            hint = " (expected ISO 8601, e.g. 2024-03-01T12:30:00Z)" if col.kind == "timestamp" else ""
            problems.append(
                f"{schema.name}.{col.name}: {int(bad.sum())} value(s) cannot be read as {col.kind}{hint}, "
                f"e.g. {_examples(raw, bad)}"
            )
        out[col.name] = converted
    if problems:
        raise BatchFormatError(problems)
    return out


def normalise(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The canonical stored form of a table: coerced, the schema's columns in schema order (then, where the schema
    takes attributes, the further columns, typed), sorted by key.

    Sorting by the primary key makes the stored bytes (and so the batch id) independent of the row order of
    the input.
    """
    out = coerce(df, schema)
    extras = extra_columns(out, schema) if schema.attributes else []
    out = out[[*schema.column_names, *extras]].rename(columns=str)
    for name in extras:  # attribute columns, typed numeric or categorical
        out[name] = typed(out[name])
    for col in schema.columns:
        if col.kind == "string":
            # Blank strings mean "no value" (CSV has no other way to say null).
            s = out[col.name]
            out[col.name] = s.mask((s.str.strip() == "").fillna(False))
    if schema.primary_key:
        out = out.sort_values(list(schema.primary_key), kind="stable", na_position="last")
    return out.reset_index(drop=True)


def read_table(batch_dir: Path, table: str) -> pd.DataFrame:
    """Read one table of a batch with the schema's dtypes.

    Raises:
        BatchFormatError: if the file is missing, unreadable or does not fit the schema.
    """
    schema = ALL_TABLES[table] if table in ALL_TABLES else IMPORT_TABLES[table]
    path = table_path(batch_dir, table)
    if path is None:
        raise BatchFormatError(f"{table}: no {table}.parquet or {table}.csv in {batch_dir}")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a readable report
        raise BatchFormatError(f"{table}: cannot read {path.name} ({type(exc).__name__}: {exc})".strip()) from exc
    return coerce(df, schema)


def _read_csv(path: Path) -> pd.DataFrame:
    """All cells as text; a row with more fields than the header is an error (e.g. an unquoted comma)."""
    with warnings.catch_warnings():
        # index_col=False stops pandas from silently turning the first column into the index when the first
        # row is too long; it warns instead, and the warning becomes an error here.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, dtype=str, index_col=False)
        except pd.errors.ParserWarning:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                width = len(next(reader))
                row = next(i for i, fields in enumerate(reader, start=1) if len(fields) > width)
            raise ValueError(
                f"row {row} has more fields than the header (a comma inside an unquoted value?)"
            ) from None


def present_tables(batch_dir: Path) -> list[str]:
    """Names of the tables that have a file in ``batch_dir``, in dependency order."""
    return [name for name in ALL_TABLES if table_path(Path(batch_dir), name) is not None]


def empty_table(table: str) -> pd.DataFrame:
    """A table with no rows but the schema's columns and dtypes (stands in for a table a batch does not hold)."""
    schema = ALL_TABLES[table]
    return coerce(pd.DataFrame({c: pd.Series(dtype="string") for c in schema.column_names}), schema)


def read_batch(batch_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table present in a batch; collects the problems of every table into one error.

    Raises:
        BatchFormatError: if a present table cannot be read, or the folder holds no table at all.
    """
    tables: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    names = present_tables(batch_dir)
    if not names:
        raise BatchFormatError(f"batch: no table file in {batch_dir} (expected one of "
                               f"{', '.join(f'{n}.parquet/.csv' for n in ALL_TABLES)})")
    for name in names:
        try:
            tables[name] = read_table(batch_dir, name)
        except BatchFormatError as exc:
            problems.extend(exc.problems)
    if problems:
        raise BatchFormatError(problems)
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


def make_tmp_dir(parent: Path) -> Path:
    """A new hidden work folder inside ``parent`` (same file system, so :func:`publish_dir` can rename it)."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    tmp_dir.chmod(0o755)  # mkdtemp makes it private; published batches must be readable by other services
    return tmp_dir


def publish_dir(tmp_dir: Path, target: Path) -> bool:
    """Atomically rename a finished ``tmp_dir`` to ``target``; if ``target`` already exists keep it.

    Content-addressed folders are immutable, so an existing target already holds the same content.

    Returns:
        ``True`` if ``target`` was created, ``False`` if it existed (``tmp_dir`` is then removed).
    """
    if not target.exists():
        try:
            os.rename(tmp_dir, target)
            return True
        except OSError:
            # Lost a race with a concurrent writer of the same content; theirs is as good as ours.
            if not target.exists():
                raise
    remove_tree(tmp_dir, tmp_dir.parent)
    return False


def store_batch(
    tables: Mapping[str, pd.DataFrame],
    landing_dir: Path,
    files: Mapping[str, Path | bytes] | None = None,
) -> tuple[str, Path]:
    """Write a batch into ``landing_dir/<batch_id>``, where ``batch_id`` is its content hash.

    Any non-empty subset of the schema's tables may be given; each is normalised (:func:`normalise`) and
    written as Parquet.
    The batch is assembled in a hidden temporary folder inside ``landing_dir`` and renamed when complete;
    storing the same content twice is a no-op returning the same id.

    Args:
        tables: One frame per table name of :data:`~pipelines.data.schema.ALL_TABLES` (at least one).
        landing_dir: Parent folder of the batch folders (created if needed).
        files: Extra files (e.g. product images), keyed by their POSIX path relative to the batch folder;
            the value is the file's bytes or a path to copy from.

    Returns:
        ``(batch_id, batch_dir)``.
    """
    unknown = sorted(set(tables) - set(ALL_TABLES))
    if unknown or not tables:
        raise ValueError(f"store_batch needs at least one of {', '.join(ALL_TABLES)}; got {sorted(tables)}")
    tmp_dir = make_tmp_dir(landing_dir)
    try:
        for name, schema in ALL_TABLES.items():
            if name in tables:
                write_table(normalise(tables[name], schema), tmp_dir, name)
        for rel, content in sorted((files or {}).items()):
            dest = tmp_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                dest.write_bytes(content)
            else:
                shutil.copyfile(content, dest)
        batch_id = batch_hash(tmp_dir)
        target = landing_dir / batch_id
        created = publish_dir(tmp_dir, target)
    except BaseException:
        remove_tree(tmp_dir, landing_dir)
        raise
    logger.info("batch %s %s in %s", batch_id, "stored" if created else "already present", landing_dir)
    return batch_id, target
