"""``docs/data-schema.md``, generated from the raw-table contract (:mod:`pipelines.data.schema`) and what each
registered family needs (:func:`pipelines.registry.family_data`).

Regenerate with ``python -m pipelines.data.schema_doc > docs/data-schema.md``; a unit test fails when the file and
this output differ, so the docs cannot drift from the contract.
"""

from __future__ import annotations

from pipelines.data.schema import ALL_TABLES, EXAMPLE_CSV, IMPORT_TABLES, Column, TableSchema
from pipelines.registry import family_data

_KIND_ROWS = (
    ("string", "any text", "`C000001`"),
    ("int", "a whole number (`3.0` is accepted as 3)", "`3`"),
    ("float", "a decimal number with `.` as separator, no thousands separator", "`19.99`"),
    (
        "timestamp",
        "ISO 8601 date or date-time; a time without offset is taken as UTC",
        "`2024-03-01`, `2024-03-01T12:30:00Z`, `2024-03-01 14:30:00+02:00`",
    ),
)


def _constraints(table: TableSchema, col: Column) -> str:
    """Human-readable constraints of one column, for the docs."""
    parts: list[str] = []
    if table.primary_key == (col.name,):
        parts.append("unique")
    elif col.name in table.primary_key:
        parts.append(f"unique together with {', '.join(f'`{k}`' for k in table.primary_key if k != col.name)}")
    for fk in table.foreign_keys:
        if fk.column == col.name:
            parts.append(f"must exist in `{fk.table}.{fk.ref_column}`")
    if col.min_value is not None and col.max_value is not None:
        parts.append(f"{col.min_value:g} to {col.max_value:g}")
    elif col.min_value is not None:
        parts.append(f">= {col.min_value:g}")
    elif col.max_value is not None:
        parts.append(f"<= {col.max_value:g}")
    if col.allowed:
        parts.append("one of " + ", ".join(f"`{v}`" for v in col.allowed))
    if col.pattern_rule:
        parts.append(col.pattern_rule)
    if col.categorical:
        parts.append("no value of the last accepted batch may vanish")
    return "; ".join(parts)


def _table_section(table: TableSchema, heading: str) -> list[str]:
    lines = ["", heading, "", table.description, ""]
    facts = []
    if table.primary_key:
        facts.append(f"Primary key: {', '.join(f'`{k}`' for k in table.primary_key)}.")
    if table.time_column:
        facts.append(f"Time column: `{table.time_column}`" + (" (must be recent, see Freshness)." if table.fresh
                                                              else "."))
    if facts:
        lines += [" ".join(facts), ""]
    lines += ["| Column | Kind | Required | Constraints | Description |", "| --- | --- | --- | --- | --- |"]
    for col in table.columns:
        required = "no (column may be left out)" if col.optional else "no" if col.nullable else "yes"
        lines.append(f"| `{col.name}` | {col.kind} | {required} | {_constraints(table, col)} | {col.description} |")
    lines += ["", f"Example `{table.name}.csv`:", "", "```csv", EXAMPLE_CSV[table.name].rstrip("\n"), "```"]
    return lines


def markdown() -> str:
    """The bring-your-own-data documentation (``docs/data-schema.md``)."""
    names = [*ALL_TABLES, *IMPORT_TABLES]
    lines = [
        "# Bring your own data: the raw file schema",
        "",
        "<!-- Generated from pipelines/data/schema.py and the families' specs by"
        " `python -m pipelines.data.schema_doc > docs/data-schema.md`. Do not edit by hand. -->",
        "",
        "ShopFlow reads shop data as a *batch*: one folder holding one file per table, plus optional product",
        "images. The built-in generator (`shopflow data generate`) writes batches in exactly this format; to use",
        "your own data, export your tables into such a folder and import it with `shopflow data import DIR`.",
        "Every table is optional: bring the tables of the data you have, and each model family trains when its",
        "tables are there (see [What each model family needs](#what-each-model-family-needs); a walk-through per",
        "data kind is in [byo-data.md](byo-data.md)).",
        "",
        "## Folder layout",
        "",
        "```text",
        "my-shop/",
        *(f"├── {name}.csv{' ' * (12 - len(name))}(or {name}.parquet)" for name in names),
        f"└── {'images/':<16}(optional: product pictures referenced by products.image_file,",
        f"    {'':<16} or labelled pictures images/<category>/<name>.png when there is no products file)",
        "    └── P0001.png",
        "```",
        "",
        "- One file per table, named `<table>.csv` or `<table>.parquet` (if both exist, the Parquet file is used).",
        "- CSV files: UTF-8, comma-separated, a header row with the column names; a blank cell means null.",
        "  Column order does not matter. Extra columns are ignored (the import warns about them).",
        "- `products.image_file` is a path relative to the folder (e.g. `images/P0001.png`) or blank. Every",
        "  referenced file must exist and be a readable image (PNG, JPEG, ...); only referenced images are kept.",
        "- Labelled images without a products file: `images/<category>/<name>.png` (or `.jpg`), any size,",
        "  greyscale or colour. The import makes one product per picture (`product_id` = file name without",
        "  extension, prefixed with the category when two categories share a name; `category` = folder name) and",
        "  stores each picture as PNG under `images/<product_id>.png` (greyscale stays greyscale, everything else",
        "  becomes RGB with transparency composited onto white).",
        "",
        "## Value kinds",
        "",
        "| Kind | How to write it | Example |",
        "| --- | --- | --- |",
        *(f"| {kind} | {how} | {example} |" for kind, how, example in _KIND_ROWS),
        "",
        "## What each model family needs",
        "",
        "| Family | Needs | Your data kind | Notes |",
        "| --- | --- | --- | --- |",
    ]
    for family, need in family_data().items():
        parts = [f"`{t}`" for t in need.all_of]
        if need.any_of:
            parts.append(" or ".join(f"`{t}`" for t in need.any_of))
        lines.append(f"| {family} | {' + '.join(parts)} | {need.kind} | {need.note} |")
    lines += [
        "",
        "A table that a family does not need is simply ignored by it. The import and the validation report list",
        "which families the batch can train and, for the others, which table is missing.",
        "",
        "## Tables",
    ]
    for table in ALL_TABLES.values():
        lines += _table_section(table, f"### {table.name}")
    lines += ["", "## Shorthand files", "", "Converted by the import into stored tables."]
    for table in IMPORT_TABLES.values():
        lines += _table_section(table, f"### {table.name} (stored as `orders`)")
    lines += [
        "",
        "## Importing",
        "",
        "```bash",
        "shopflow data import path/to/my-shop",
        "shopflow data import path/to/old-shop --historical   # data that ended a while ago, see Freshness",
        "```",
        "",
        "The import reads every table with the kinds above and reports **all** problems at once, each naming",
        "the table and column: a missing column, values that cannot be read (with example rows, counted from 1",
        "after the header) and referenced images that are missing or unreadable. Nothing is stored when there is",
        "a problem. A folder without any table file (or labelled images) is a problem too.",
        "",
        "On success the tables are normalised (kinds converted, extra columns dropped, rows sorted by primary key)",
        "and stored as Parquet, with the images, in a new landing folder named by the batch id, a hash of the",
        "content. Importing the same data again gives the same batch id and stores nothing new. The import then",
        "prints which model families the batch can train. Batch ids are checked wherever they are given",
        "(`shopflow validate ID`, the data DAG's `batch_id`): 1-64 letters, digits, `-` or `_`, starting with a",
        "letter or digit, so a folder dropped into `landing/` by hand must be named that way; paths such as `..`",
        "are refused before any file is touched, and symlinked batch folders are never followed.",
        "",
        "The import checks only that the files can be read as this schema. Whether the values make sense",
        "(required values present, ranges and allowed values, unique keys, foreign keys, enough and recent",
        "data) is checked next by the Great Expectations gate of the data pipeline, which quarantines a failing",
        "batch with a report of what to fix. Each table present is checked with its own suite; a foreign key is",
        "checked only when the referenced table is in the batch too. Every order line must satisfy",
        "`amount = quantity * unit_price` (to 0.01 per unit), and each batch is compared with the last accepted",
        "one: row counts, shifts of numeric columns, new extremes, and values of the categorical columns that",
        "vanish or appear (see [byo-data.md](byo-data.md#each-batch-is-compared-with-the-last-accepted-one)).",
        "",
        "## Freshness",
        "",
        "The newest row of " + ", ".join(f"`{t.name}`" for t in ALL_TABLES.values() if t.fresh) + " must be",
        "recent: at most `SHOPFLOW_VALIDATION__MAX_STALENESS_DAYS` (default 3) days old, measured in the data's",
        "own periods for `daily_sales`: its frequency is inferred from the dates and one and a half periods are",
        "allowed when that is longer (about 10 days for weekly, 46 days for monthly and 137 days for quarterly",
        "series dated at the period's start).",
        "",
        "Historical data (a transaction log that ended last year, a public ratings data set) would always fail",
        "that check. Say so explicitly and it is judged as of its own newest timestamp instead of now (the other",
        "checks, including \"nothing in the future\", still run, and the report says it was judged historically):",
        "",
        "- `shopflow data import DIR --historical` marks the batch (stored in its `manifest.json`), so every later",
        "  validation of it, including `shopflow run --no-generate`, judges it historically;",
        "- `shopflow validate --historical [BATCH]` for one validation;",
        "- `SHOPFLOW_VALIDATION__HISTORICAL=true` for every batch (e.g. a back-fill environment).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
