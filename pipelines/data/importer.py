"""Import users' own shop data (one CSV or Parquet file per table, any subset of the tables) as a landing batch.

The import checks only that the files can be read as the schema of :mod:`pipelines.data.schema` (files,
columns, value kinds, referenced images) and reports every problem at once. Value-level quality (nulls, ranges,
unique and foreign keys, freshness) is the job of the Great Expectations gate that runs on the landed batch.

Besides the stored tables it accepts two shorthands, normalised into what the model families read:

* ``transactions.csv`` (customer_id, date, amount) becomes ``orders``
  (:func:`pipelines.data.transactions.orders_from_transactions`);
* labelled pictures ``images/<category>/<name>.png|jpg`` (any size, greyscale or colour) without a products file
  become ``products`` rows (one per picture) with the pictures stored as PNG under ``images/<product_id>.png``,
  like the generator writes them.

See ``docs/data-schema.md`` and ``docs/byo-data.md``.
"""

from __future__ import annotations

import io as _bytes_io
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image, UnidentifiedImageError

from pipelines.data import io
from pipelines.data.attributes import extra_columns, typed
from pipelines.data.io import BatchFormatError
from pipelines.data.kinds import MANIFEST, Support, describe, family_support, manifest_bytes
from pipelines.data.schema import ALL_TABLES, IMAGE_EXTENSIONS, IMPORT_TABLES
from pipelines.data.transactions import orders_from_transactions

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
    families: dict[str, Support] = field(default_factory=dict)
    """Which model families can train on the batch, and why not for the others."""
    historical: bool = False
    """The batch is judged as of its own newest timestamp (``manifest.json``)."""
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    """Attribute columns kept beyond the schema, per table: column -> ``numeric`` or ``categorical``."""

    @property
    def trainable(self) -> list[str]:
        """Families that can train on the batch."""
        return [name for name, s in self.families.items() if s.trainable]

    def family_report(self) -> list[str]:
        """One line per family: ``churn: yes`` or ``pricing: no (missing table products)``."""
        return describe(self.families)


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


def _labelled_images(src: Path) -> tuple[pd.DataFrame | None, dict[str, bytes], list[str], list[str]]:
    """Products from ``images/<category>/<name>.<ext>``: one product per picture, pictures normalised to PNG.

    Returns:
        The products table (``None`` when there is no labelled folder), the files to store (relative path ->
        PNG bytes), problems and warnings.
    """
    root = src / "images"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not folders:
        return None, {}, [], []
    pictures: list[tuple[str, Path]] = []
    ignored: list[str] = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.parent == folder:
                pictures.append((folder.name, path))
            else:
                ignored.append(path.relative_to(src).as_posix())
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    warnings = []
    if ignored or loose:
        skipped = ignored + [f"images/{n}" for n in loose]
        warnings.append(f"images: ignoring {len(skipped)} file(s) that are not pictures in a category folder, e.g. "
                        + ", ".join(skipped[: io.MAX_EXAMPLES]))
    stems: dict[str, int] = {}
    for _, path in pictures:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    rows, files, unreadable = [], {}, []
    taken: set[str] = set()
    for category, path in pictures:
        pid = path.stem if stems[path.stem] == 1 else f"{category}_{path.stem}"
        if pid in taken:  # the same name twice in one folder (a.png and a.jpg)
            pid = f"{pid}_{path.suffix.lower().lstrip('.')}"
        taken.add(pid)
        try:
            png = _normalised_png(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            unreadable.append(path.relative_to(src).as_posix())
            continue
        rel = f"images/{pid}.png"
        files[rel] = png
        rows.append({"product_id": pid, "category": category, "brand": None, "base_price": None, "cost": None,
                     "image_file": rel})
    problems = []
    if unreadable:
        problems.append(f"images: {len(unreadable)} picture(s) are not readable images, e.g. "
                        + ", ".join(repr(u) for u in unreadable[: io.MAX_EXAMPLES]))
    if not pictures:
        problems.append(f"images: the category folders {', '.join(f.name for f in folders[:5])} hold no "
                        f"{'/'.join(IMAGE_EXTENSIONS)} pictures")
    return pd.DataFrame(rows, columns=ALL_TABLES["products"].column_names), files, problems, warnings


def _normalised_png(path: Path) -> bytes:
    """The picture as PNG bytes at its own size: greyscale kept as ``L``, anything else RGB on white.

    Transparency is composited onto white, as the vision family's image loader does.
    """
    with Image.open(path) as img:
        img.load()
        if img.mode in ("1", "L", "I", "I;16", "F"):
            out = img.convert("L")
        elif img.mode in ("LA", "La"):
            out = Image.alpha_composite(Image.new("LA", img.size, (255, 255)), img.convert("LA")).convert("L")
        else:
            out = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)),
                                        img.convert("RGBA")).convert("RGB")
    buf = _bytes_io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def _product_views(src: Path, products: pd.DataFrame) -> tuple[dict[str, Path], list[str], list[str]]:
    """More pictures of catalogue products: ``views/<product_id>/<name>.png|jpg`` (several views per product, read
    by the vision family beside ``image_file``).

    Returns:
        Files to copy (relative path -> source), problems (unreadable pictures) and warnings (views of products the
        catalogue does not have).
    """
    root = src / "views"
    if not root.is_dir() or root.is_symlink():
        return {}, [], []
    known = set(products["product_id"].astype(str))
    files: dict[str, Path] = {}
    unreadable: list[str] = []
    unknown: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if folder.name not in known:
            unknown.append(folder.name)
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            rel = path.relative_to(src).as_posix()
            try:
                with Image.open(path) as img:
                    img.verify()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                unreadable.append(rel)
                continue
            files[rel] = path
    problems = [f"views: {len(unreadable)} picture(s) are not readable images, e.g. "
                + ", ".join(unreadable[: io.MAX_EXAMPLES])] if unreadable else []
    warnings = [f"views: ignoring pictures of {len(unknown)} product(s) not in the catalogue, e.g. "
                + ", ".join(unknown[: io.MAX_EXAMPLES])] if unknown else []
    return files, problems, warnings


def _stray_files(src: Path, image_files: dict[str, Path | bytes]) -> list[str]:
    """Top-level files that are neither a table nor a referenced image (e.g. a misspelt table name)."""
    known = {f"{name}{suffix}" for name in (*ALL_TABLES, *IMPORT_TABLES) for suffix in _TABLE_SUFFIXES}
    image_roots = {PurePosixPath(rel).parts[0] for rel in image_files}
    return sorted(p.name for p in src.iterdir() if p.name not in known | image_roots and not p.name.startswith("."))


def import_batch(src: Path, landing_dir: Path, historical: bool = False) -> ImportResult:
    """Read a folder of user tables, check it fits the schema and store it as a landing batch.

    Args:
        src: Folder with any of the tables of :data:`~pipelines.data.schema.ALL_TABLES` as ``.csv`` or ``.parquet``
            (Parquet wins if both exist), or ``transactions`` instead of ``orders``, and optionally the images
            referenced by ``products.image_file`` (paths relative to ``src``) or, without a products file,
            labelled pictures in ``images/<category>/``.
        landing_dir: Parent of batch folders; the batch lands in ``landing_dir/<batch_id>``.
        historical: Mark the batch as historical: the gate then judges freshness as of the batch's own newest
            timestamp instead of now (stored in the batch's ``manifest.json``, so it is part of the batch id).

    Returns:
        The batch id (content hash: importing the same data again gives the same id), its folder, row counts,
        warnings and which model families can train on it.

    Raises:
        BatchFormatError: listing every problem (no table at all, missing columns, values that cannot be read,
            missing or unreadable images, both orders and transactions), each naming the table and column.
            Nothing is stored then.
    """
    src = Path(src)
    if not src.is_dir():
        raise BatchFormatError(f"{src} is not a folder", header=f"Cannot import {src}:")
    tables: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    warnings: list[str] = []
    attributes: dict[str, dict[str, str]] = {}
    for name, schema in (*ALL_TABLES.items(), *IMPORT_TABLES.items()):
        if io.table_path(src, name) is None:
            continue
        try:
            df = io.read_table(src, name)
        except BatchFormatError as exc:
            problems.extend(exc.problems)
            continue
        extra = extra_columns(df, schema)
        if extra and schema.attributes:
            kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(typed(df[c])) else "categorical" for c in extra}
            attributes[name] = kinds
            logger.info("%s: %s attribute column(s): %s", src, name,
                        ", ".join(f"{c} ({k})" for c, k in kinds.items()))
        elif extra:
            warnings.append(f"{name}: ignoring unknown column(s) {', '.join(extra)}")
        tables[name] = df[schema.column_names] if name in IMPORT_TABLES else df
    if io.table_path(src, "transactions") is not None:
        transactions = tables.pop("transactions", None)
        if io.table_path(src, "orders") is not None:
            problems.append("transactions: give either orders or transactions, not both (transactions are stored "
                            "as orders)")
        elif transactions is not None:
            try:
                tables["orders"] = orders_from_transactions(transactions)
            except ValueError as exc:
                problems.append(f"transactions.amount: {exc}")
    files: dict[str, Path | bytes] = {}
    if io.table_path(src, "products") is not None:
        if "products" in tables:
            image_file, referenced, image_problems = _check_images(src, tables["products"])
            tables["products"]["image_file"] = image_file
            files.update(referenced)
            problems.extend(image_problems)
            views, view_problems, view_warnings = _product_views(src, tables["products"])
            files.update(views)
            problems.extend(view_problems)
            warnings.extend(view_warnings)
    else:
        products, pictures, image_problems, image_warnings = _labelled_images(src)
        problems.extend(image_problems)
        warnings.extend(image_warnings)
        if products is not None and not products.empty:
            tables["products"] = products
            files.update(pictures)
    if not tables and not problems:
        problems.append(
            "batch: no table file found (expected any of "
            + ", ".join(f"{n}.csv" for n in (*ALL_TABLES, *IMPORT_TABLES))
            + ", or labelled pictures in images/<category>/)"
        )
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
    if historical:
        files[MANIFEST] = manifest_bytes(historical=True)
    n_images = sum(1 for rel in files if rel != MANIFEST)
    batch_id, batch_dir = io.store_batch(tables, landing_dir, files=files)
    rows = {name: len(df) for name, df in tables.items()}
    families = family_support(io.read_batch(batch_dir))
    logger.info("imported %s as batch %s (%s); trainable: %s", src, batch_id,
                ", ".join(f"{k}={v}" for k, v in rows.items()),
                ", ".join(n for n, f in families.items() if f.trainable) or "none")
    return ImportResult(batch_id=batch_id, batch_dir=batch_dir, rows=rows, images=n_images,
                        warnings=tuple(warnings), families=families, historical=historical,
                        attributes=attributes)
