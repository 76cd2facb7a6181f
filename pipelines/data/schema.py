"""The raw-table contract shared by the generator, the importer, validation and feature building.

A *batch* is one folder holding one file per table (``<table>.parquet`` or ``<table>.csv``) plus an optional
``images/`` folder of product images referenced by ``products.image_file``. See ``docs/data-schema.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
        Column("brand", "string", description="Brand name."),
        Column("base_price", "float", min_value=0.01, description="List price."),
        Column("cost", "float", min_value=0.0, description="Unit cost (for margins and price floors)."),
        Column("image_file", "string", nullable=True, description="Path of the image, relative to the batch folder."),
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
    foreign_keys=(
        ForeignKey("customer_id", "customers", "customer_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
)

DAILY_SALES = TableSchema(
    name="daily_sales",
    description="Store-wide daily price and units sold per product (all channels).",
    columns=(
        Column("product_id", "string", description="Product."),
        Column("date", "timestamp", description="Day (midnight UTC)."),
        Column("price", "float", min_value=0.01, description="Selling price that day (after promotions)."),
        Column("units", "int", min_value=0, description="Units sold that day."),
    ),
    primary_key=("product_id", "date"),
    time_column="date",
    foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (CUSTOMERS, PRODUCTS, EVENTS, ORDERS, DAILY_SALES)}
"""Every raw table, in dependency order (referenced tables first)."""

EXAMPLE_CSV: dict[str, str] = {
    "customers": """\
customer_id,signup_ts,region,segment
C000001,2024-01-15T09:12:00Z,north,premium
C000002,2024-02-03T18:40:00Z,west,bargain
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


def markdown() -> str:
    """The bring-your-own-data documentation (``docs/data-schema.md``), generated from this module.

    Regenerate the file with ``python -m pipelines.data.schema > docs/data-schema.md``; a unit test fails when
    the file and this output differ, so the docs cannot drift from the contract.
    """
    lines = [
        "# Bring your own data: the raw file schema",
        "",
        "<!-- Generated from pipelines/data/schema.py by `python -m pipelines.data.schema > docs/data-schema.md`."
        " Do not edit by hand. -->",
        "",
        "ShopFlow reads shop data as a *batch*: one folder holding one file per table, plus optional product",
        "images. The built-in generator (`shopflow data generate`) writes batches in exactly this format; to use",
        "your own data, export your tables into such a folder and import it with `shopflow data import DIR`.",
        "",
        "## Folder layout",
        "",
        "```text",
        "my-shop/",
        *(f"├── {name}.csv{' ' * (12 - len(name))}(or {name}.parquet)" for name in TABLES),
        f"└── {'images/':<16}(optional: product pictures referenced by products.image_file)",
        "    └── P0001.png",
        "```",
        "",
        "- One file per table, named `<table>.csv` or `<table>.parquet` (if both exist, the Parquet file is used).",
        "- CSV files: UTF-8, comma-separated, a header row with the column names; a blank cell means null.",
        "  Column order does not matter. Extra columns are ignored (the import warns about them).",
        "- `products.image_file` is a path relative to the folder (e.g. `images/P0001.png`) or blank. Every",
        "  referenced file must exist and be a readable image (PNG, JPEG, ...); only referenced images are kept.",
        "",
        "## Value kinds",
        "",
        "| Kind | How to write it | Example |",
        "| --- | --- | --- |",
        *(f"| {kind} | {how} | {example} |" for kind, how, example in _KIND_ROWS),
        "",
        "## Tables",
    ]
    for table in TABLES.values():
        lines += ["", f"### {table.name}", "", table.description, ""]
        key = ", ".join(f"`{k}`" for k in table.primary_key)
        facts = [f"Primary key: {key}."]
        if table.time_column:
            facts.append(f"Time column: `{table.time_column}`.")
        lines += [" ".join(facts), ""]
        lines += ["| Column | Kind | Required | Constraints | Description |", "| --- | --- | --- | --- | --- |"]
        for col in table.columns:
            required = "no" if col.nullable else "yes"
            lines.append(
                f"| `{col.name}` | {col.kind} | {required} | {_constraints(table, col)} | {col.description} |"
            )
        lines += ["", f"Example `{table.name}.csv`:", "", "```csv", EXAMPLE_CSV[table.name].rstrip("\n"), "```"]
    lines += [
        "",
        "## Importing",
        "",
        "```bash",
        "shopflow data import path/to/my-shop",
        "```",
        "",
        "The import reads every table with the kinds above and reports **all** problems at once, each naming",
        "the table and column: a missing table file, a missing column, values that cannot be read (with example",
        "rows, counted from 1 after the header) and referenced images that are missing or unreadable. Nothing is",
        "stored when there is a problem.",
        "",
        "On success the tables are normalised (kinds converted, extra columns dropped, rows sorted by primary key)",
        "and stored as Parquet, with the referenced images, in a new landing folder named by the batch id, a hash",
        "of the content. Importing the same data again gives the same batch id and stores nothing new.",
        "",
        "The import checks only that the files can be read as this schema. Whether the values make sense",
        "(required values present, ranges and allowed values, unique keys, foreign keys, enough and recent",
        "data) is checked next by the Great Expectations gate of the data pipeline, which quarantines a failing",
        "batch with a report of what to fix.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
