"""The raw-table contract shared by the generator, the importer, validation and feature building.

A *batch* is one folder holding one file per table (``<table>.parquet`` or ``<table>.csv``) plus an optional
``images/`` folder of product images referenced by ``products.image_file``. Every table is optional: a batch
holds the tables of the data kinds it brings, and each family's spec says which tables it needs (:class:`FamilyData`,
collected by :func:`pipelines.registry.family_data`). See ``docs/data-schema.md`` (generated from this module by
:mod:`pipelines.data.schema_doc`) and ``docs/byo-data.md``.
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
    pattern: str | None = None
    """Regular expression every (non-null) value must match, with a plain-words ``pattern_rule`` for reports."""
    pattern_rule: str = ""
    description: str = ""
    optional: bool = False
    """The file may leave the column out; it is then stored as all nulls (implies ``nullable``)."""
    categorical: bool = False
    """A closed set of labels: the gate fails a batch in which a value of the last accepted batch vanished."""
    label: bool = False
    """A target some family learns (not an input feature, e.g. ``customers.churned``)."""


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
    min_rows: int | None = None
    """Fewest rows of a sound export; ``None``: ``validation.min_rows`` (a catalogue of one product is real)."""
    attributes: bool = False
    """Further columns of the file are kept as attributes, each typed numeric or categorical at import
    (:mod:`pipelines.data.attributes`), instead of being ignored."""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


EVENT_TYPES = ("view", "add_to_cart", "purchase")
RELATIVE_PATH = r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))[^\\]+$"
"""A path that stays inside its folder: relative, no ``..`` segment, no backslash (files are read by it)."""

CUSTOMERS = TableSchema(
    name="customers",
    description="One row per customer. Any further column (plan, state, contract, age...) is kept as a customer "
                "attribute, numeric or categorical (Parquet dtypes declare the kind; CSV text is numeric when every "
                "value reads as a number), and used as a feature by the churn family.",
    columns=(
        Column("customer_id", "string", description="Unique customer id."),
        Column("signup_ts", "timestamp", description="Account creation time (UTC)."),
        Column("region", "string", categorical=True, nullable=True, optional=True,
               description="Sales region, e.g. 'north' (an attribute)."),
        Column("segment", "string", categorical=True, nullable=True, optional=True,
               description="Marketing segment, e.g. 'premium' (an attribute)."),
        Column("churned", "int", nullable=True, optional=True, min_value=0, max_value=1, label=True,
               description="Optional churn label known at the data's end (1 churned, 0 active); when given, "
                           "the churn family trains on it instead of deriving labels from the orders."),
    ),
    primary_key=("customer_id",),
    time_column="signup_ts",
    attributes=True,
)

PRODUCTS = TableSchema(
    name="products",
    description="One row per product of the catalogue.",
    columns=(
        Column("product_id", "string", description="Unique product id."),
        Column("category", "string", categorical=True, description="Product category, e.g. 'electronics'."),
        Column("brand", "string", nullable=True, optional=True, description="Brand name."),
        Column("base_price", "float", nullable=True, optional=True, min_value=0.01,
               description="List price (required by the pricing family)."),
        Column("cost", "float", nullable=True, optional=True, min_value=0.0,
               description="Unit cost, for margins and price floors (required by the pricing family)."),
        Column("image_file", "string", nullable=True, optional=True, pattern=RELATIVE_PATH,
               pattern_rule="a relative path inside the batch folder (no leading '/', no '..', no '\\')",
               description="Path of the image, relative to the batch folder."),
    ),
    primary_key=("product_id",),
    min_rows=1,
)

EVENTS = TableSchema(
    name="events",
    description="Behavioural event log.",
    columns=(
        Column("event_id", "string", description="Unique event id."),
        Column("customer_id", "string", description="Customer who acted."),
        Column("product_id", "string", description="Product viewed, added to the cart or bought."),
        Column("event_type", "string", allowed=EVENT_TYPES, categorical=True, description="What happened."),
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
