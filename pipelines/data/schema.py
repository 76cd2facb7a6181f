"""The raw-table contract shared by the generator, the importer, validation and feature building.

A *batch* is one folder holding one file per table (``<table>.parquet`` or ``<table>.csv``) plus an optional
``images/`` folder of product images referenced by ``products.image_file``. Every table is optional: a batch
holds the tables of the data kinds it brings, and :func:`family_data` says which tables each model family needs (from its spec).
See ``docs/data-schema.md`` (generated from this module) and ``docs/byo-data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

Kind = Literal["string", "int", "float", "timestamp"]


@dataclass(frozen=True)
class Column:
    """One column: its logical kind, whether nulls are allowed, optional bounds or allowed values."""

    name: str
    kind: Kind
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    description: str = ""
    optional: bool = False
    """The file may leave the column out; it is then stored as all nulls (implies ``nullable``)."""


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    time_column: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    description: str = ""
    fresh: bool = False
    """The newest ``time_column`` value must be recent (the gate's freshness check)."""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


EVENT_TYPES = ("view", "add_to_cart", "purchase")

CUSTOMERS = TableSchema(
    name="customers",
    description="One row per customer.",
    columns=(
        Column("customer_id", "string", description="Unique customer id."),
        Column("signup_ts", "timestamp", description="Account creation time (UTC)."),
        Column("region", "string", description="Sales region, e.g. 'north'."),
        Column("segment", "string", description="Marketing segment, e.g. 'premium'."),
        Column("churned", "int", nullable=True, optional=True, min_value=0, max_value=1,
               description="Optional churn label known at the data's end (1 churned, 0 active); when given, "
                           "the churn family trains on it instead of deriving labels from the orders."),
    ),
    primary_key=("customer_id",),
    time_column="signup_ts",
)

PRODUCTS = TableSchema(
    name="products",
    description="One row per product of the catalogue.",
    columns=(
        Column("product_id", "string", description="Unique product id."),
        Column("category", "string", description="Product category, e.g. 'electronics'."),
        Column("brand", "string", nullable=True, description="Brand name."),
        Column("base_price", "float", nullable=True, min_value=0.01,
               description="List price (required by the pricing family)."),
        Column("cost", "float", nullable=True, min_value=0.0,
               description="Unit cost, for margins and price floors (required by the pricing family)."),
        Column("image_file", "string", nullable=True, optional=True,
               description="Path of the image, relative to the batch folder."),
    ),
    primary_key=("product_id",),
)

EVENTS = TableSchema(
    name="events",
    description="Behavioural event log.",
    columns=(
        Column("event_id", "string", description="Unique event id."),
        Column("customer_id", "string", description="Customer who acted."),
        Column("product_id", "string", description="Product viewed, added to the cart or bought."),
        Column("event_type", "string", allowed=EVENT_TYPES, description="What happened."),
        Column("event_ts", "timestamp", description="When it happened (UTC)."),
    ),
    primary_key=("event_id",),
    time_column="event_ts",
    fresh=True,
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
)

ORDERS = TableSchema(
    name="orders",
    description="One row per order line.",
    columns=(
        Column("order_id", "string", description="Unique order-line id."),
        Column("customer_id", "string", description="Buyer."),
        Column("product_id", "string", description="Product bought."),
        Column("order_ts", "timestamp", description="Purchase time (UTC)."),
        Column("quantity", "int", min_value=1, max_value=1000, description="Units bought."),
        Column("unit_price", "float", min_value=0.0, description="Price paid per unit."),
        Column("amount", "float", min_value=0.0, description="quantity * unit_price."),
    ),
    primary_key=("order_id",),
    time_column="order_ts",
    fresh=True,
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
)

DAILY_SALES = TableSchema(
    name="daily_sales",
    description="Price and units sold per product and period, store-wide (all channels). Daily for the generator; "
                "your own series may be daily, weekly, monthly or quarterly (inferred from the dates, one row "
                "per product and period, dated at the period's start).",
    columns=(
        Column("product_id", "string", description="Product."),
        Column("date", "timestamp",
               description="Start of the period (midnight UTC), e.g. the day or the week's Monday."),
        Column("price", "float", min_value=0.01, description="Selling price in the period (after promotions)."),
        Column("units", "int", min_value=0, description="Units sold in the period."),
    ),
    primary_key=("product_id", "date"),
    time_column="date",
    foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
    fresh=True,
)

RATINGS = TableSchema(
    name="ratings",
    description="Explicit feedback: star ratings of products by customers.",
    columns=(
        Column("customer_id", "string", description="Customer who rated."),
        Column("product_id", "string", description="Product rated."),
        Column("rating", "float", min_value=1, max_value=5, description="Stars, 1 (worst) to 5 (best)."),
        Column("ts", "timestamp", description="When the rating was given (UTC)."),
    ),
    primary_key=("customer_id", "product_id", "ts"),
    time_column="ts",
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
    fresh=True,
)

TRANSACTIONS = TableSchema(
    name="transactions",
    description="A bare transaction log, the shortest way to bring purchase history: the import turns each row "
                "into an order line (`order_id` numbered in time order, `product_id` `ITEM`, `quantity` 1, "
                "`unit_price` = `amount`). Give either `transactions` or `orders`, not both.",
    columns=(
        Column("customer_id", "string", description="Buyer."),
        Column("date", "timestamp", description="Date or time of the purchase (UTC)."),
        Column("amount", "float", min_value=0.0, description="Amount paid."),
    ),
    primary_key=(),
    time_column="date",
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (CUSTOMERS, PRODUCTS, EVENTS, ORDERS, DAILY_SALES)}
"""The tables the built-in generator writes (a complete synthetic shop), in dependency order."""

EXTRA_TABLES: dict[str, TableSchema] = {t.name: t for t in (RATINGS,)}
"""Tables only your own data brings (the generator does not write them)."""

ALL_TABLES: dict[str, TableSchema] = {**TABLES, **EXTRA_TABLES}
"""Every table a stored batch may hold, in dependency order (referenced tables first). Each one is optional."""

IMPORT_TABLES: dict[str, TableSchema] = {t.name: t for t in (TRANSACTIONS,)}
"""Shorthand files the import accepts and converts into stored tables (``transactions`` -> ``orders``)."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
"""Picture files accepted in labelled image folders (``images/<category>/<name>.png``)."""


@dataclass(frozen=True)
class FamilyData:
    """What one model family needs from a batch.

    Attributes:
        all_of: Tables that must all be present and non-empty.
        any_of: At least one of these must be present and non-empty (empty: no such condition).
        kind: The bring-your-own data kind, in words (docs and reports).
        note: What else the family checks when it trains.
    """

    all_of: tuple[str, ...]
    any_of: tuple[str, ...] = ()
    kind: str = ""
    note: str = ""
    check: Callable[[Mapping[str, Any]], list[str]] | None = field(default=None, compare=False)
    """Column-level needs the tables' presence does not guarantee: ``tables -> reasons`` (empty: fine)."""


def family_data() -> dict[str, FamilyData]:
    """Which tables each registered model family needs (its spec's ``data``), checked by the import, the gate's
    report and each family's ``prepare``."""
    from pipelines.registry import load_registry

    return {name: spec.data for name, spec in load_registry().items() if spec.data is not None}

EXAMPLE_CSV: dict[str, str] = {
    "customers": """\
customer_id,signup_ts,region,segment,churned
C000001,2024-01-15T09:12:00Z,north,premium,0
C000002,2024-02-03T18:40:00Z,west,bargain,
""",
    "products": """\
product_id,category,brand,base_price,cost,image_file
P0001,electronics,Voltix,199.99,118.50,images/P0001.png
P0002,grocery,Freshly,4.99,2.40,
""",
    "events": """\
event_id,customer_id,product_id,event_type,event_ts
E00000001,C000001,P0001,view,2024-03-01T12:25:10Z
E00000002,C000001,P0001,add_to_cart,2024-03-01T12:28:45Z
E00000003,C000001,P0001,purchase,2024-03-01T12:30:00Z
E00000004,C000002,P0002,view,2024-03-02T08:05:00Z
E00000005,C000002,P0002,purchase,2024-03-02T08:07:30Z
""",
    "orders": """\
order_id,customer_id,product_id,order_ts,quantity,unit_price,amount
O0000001,C000001,P0001,2024-03-01T12:30:00Z,1,179.99,179.99
O0000002,C000002,P0002,2024-03-02T08:07:30Z,3,4.99,14.97
""",
    "daily_sales": """\
product_id,date,price,units
P0001,2024-03-01,179.99,14
P0002,2024-03-01,4.99,120
P0001,2024-03-02,199.99,9
P0002,2024-03-02,4.99,131
""",
    "ratings": """\
customer_id,product_id,rating,ts
C000001,P0001,5,2024-03-04T10:00:00Z
C000002,P0002,3,2024-03-05T19:30:00Z
""",
    "transactions": """\
customer_id,date,amount
C000001,2024-03-01,179.99
C000002,2024-03-02,14.97
""",
}
"""A tiny consistent example batch, one CSV text per table (shown in the docs; a test imports it)."""

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
    """The bring-your-own-data documentation (``docs/data-schema.md``), generated from this module.

    Regenerate the file with ``python -m pipelines.data.schema > docs/data-schema.md``; a unit test fails when
    the file and this output differ, so the docs cannot drift from the contract.
    """
    names = [*ALL_TABLES, *IMPORT_TABLES]
    lines = [
        "# Bring your own data: the raw file schema",
        "",
        "<!-- Generated from pipelines/data/schema.py by `python -m pipelines.data.schema > docs/data-schema.md`."
        " Do not edit by hand. -->",
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
        "prints which model families the batch can train.",
        "",
        "The import checks only that the files can be read as this schema. Whether the values make sense",
        "(required values present, ranges and allowed values, unique keys, foreign keys, enough and recent",
        "data) is checked next by the Great Expectations gate of the data pipeline, which quarantines a failing",
        "batch with a report of what to fix. Each table present is checked with its own suite; a foreign key is",
        "checked only when the referenced table is in the batch too.",
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
