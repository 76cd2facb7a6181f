"""Import users' own shop data (one CSV or Parquet file per table) as a landing batch.

The import checks only that the files can be read as the schema of :mod:`pipelines.data.schema` (files,
columns, value kinds, referenced images) and reports every problem at once. Value-level quality (nulls, ranges,
unique and foreign keys, freshness) is the job of the Great Expectations gate that runs on the landed batch.
See ``docs/data-schema.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image, UnidentifiedImageError

from pipelines.data import io
from pipelines.data.io import BatchFormatError
from pipelines.data.schema import TABLES

logger = logging.getLogger(__name__)

_TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class ImportResult:
    """Outcome of a successful import."""

    batch_id: str
    batch_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    """Row count per table."""
    images: int = 0
    """Number of product images copied."""
    warnings: tuple[str, ...] = ()
    """Things that did not stop the import (e.g. ignored extra columns or files)."""


def _image_path(raw: str) -> PurePosixPath | None:
    """The normalised relative path of an ``image_file`` value, or ``None`` if it points outside the folder."""
    path = PurePosixPath(raw.strip().replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _check_images(src: Path, products: pd.DataFrame) -> tuple[pd.Series, dict[str, Path], list[str]]:
    """Resolve ``products.image_file``.

    Returns:
        The normalised ``image_file`` column, the files to copy (relative path -> source) and the problems.
    """
    files: dict[str, Path] = {}
    kinds: dict[str, list[tuple[int, str]]] = {"outside the folder": [], "missing": [], "not a readable image": []}
    normalised: list[object] = []
    for row, value in enumerate(products["image_file"].tolist()):
        if value is None or value is pd.NA or not str(value).strip():
            normalised.append(pd.NA)
            continue
        rel = _image_path(str(value))
        if rel is None:
            kinds["outside the folder"].append((row, str(value)))
            normalised.append(value)
            continue
        normalised.append(rel.as_posix())
        path = src / rel
        if not path.is_file():
            kinds["missing"].append((row, str(value)))
            continue
        try:
            with Image.open(path) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            kinds["not a readable image"].append((row, str(value)))
            continue
        files[rel.as_posix()] = path
    problems = [
        f"products.image_file: {len(bad)} referenced image(s) {what}, e.g. "
        + ", ".join(f"row {row + 1}: {value!r}" for row, value in bad[: io.MAX_EXAMPLES])
        for what, bad in kinds.items()
        if bad
    ]
    return pd.Series(normalised, index=products.index, dtype="string"), files, problems


def _stray_files(src: Path, image_files: dict[str, Path]) -> list[str]:
    """Top-level files that are neither a table nor a referenced image (e.g. a misspelt table name)."""
    known = {f"{name}{suffix}" for name in TABLES for suffix in _TABLE_SUFFIXES}
    image_roots = {PurePosixPath(rel).parts[0] for rel in image_files}
    return sorted(p.name for p in src.iterdir() if p.name not in known | image_roots and not p.name.startswith("."))


def import_batch(src: Path, landing_dir: Path) -> ImportResult:
    """Read a folder of user tables, check it fits the schema and store it as a landing batch.

    Args:
        src: Folder with ``customers``, ``products``, ``events``, ``orders`` and ``daily_sales`` as ``.csv`` or
            ``.parquet`` (Parquet wins if both exist), and optionally the images referenced by
            ``products.image_file`` (paths relative to ``src``).
        landing_dir: Parent of batch folders; the batch lands in ``landing_dir/<batch_id>``.

    Returns:
        The batch id (content hash: importing the same data again gives the same id), its folder, row counts
        and warnings.

    Raises:
        BatchFormatError: listing every problem (missing table files or columns, values that cannot be read,
            missing or unreadable referenced images), each naming the table and column. Nothing is stored then.
    """
    src = Path(src)
    if not src.is_dir():
        raise BatchFormatError(f"{src} is not a folder", header=f"Cannot import {src}:")
    tables: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for name, schema in TABLES.items():
        try:
            df = io.read_table(src, name)
        except BatchFormatError as exc:
            problems.extend(exc.problems)
            continue
        extra = [c for c in df.columns if c not in schema.column_names]
        if extra:
            warnings.append(f"{name}: ignoring unknown column(s) {', '.join(map(str, extra))}")
        tables[name] = df
    files: dict[str, Path] = {}
    if "products" in tables:
        image_file, files, image_problems = _check_images(src, tables["products"])
        tables["products"]["image_file"] = image_file
        problems.extend(image_problems)
    stray = _stray_files(src, files)
    if problems:
        header = f"Cannot import {src} ({len(problems)} problem(s); rows are counted from 1 after the header):"
        if stray:
            # The usual cause of a missing table is a misspelt file name.
            problems.append(f"note: these files are not table files and were ignored: {', '.join(stray)}")
        raise BatchFormatError(problems, header=header)
    if stray:
        warnings.append(f"ignoring file(s) that are not tables: {', '.join(stray)}")
    for warning in warnings:
        logger.warning("%s: %s", src, warning)
    batch_id, batch_dir = io.store_batch(tables, landing_dir, files=files)
    rows = {name: len(df) for name, df in tables.items()}
    logger.info("imported %s as batch %s (%s)", src, batch_id, ", ".join(f"{k}={v}" for k, v in rows.items()))
    return ImportResult(batch_id=batch_id, batch_dir=batch_dir, rows=rows, images=len(files), warnings=tuple(warnings))
