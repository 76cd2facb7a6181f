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
        Column("category", "string"),
        Column("brand", "string"),
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
        Column("event_id", "string"),
        Column("customer_id", "string"),
        Column("product_id", "string"),
        Column("event_type", "string", allowed=EVENT_TYPES),
        Column("event_ts", "timestamp"),
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
        Column("order_id", "string"),
        Column("customer_id", "string"),
        Column("product_id", "string"),
        Column("order_ts", "timestamp"),
        Column("quantity", "int", min_value=1, max_value=1000),
        Column("unit_price", "float", min_value=0.0),
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
        Column("product_id", "string"),
        Column("date", "timestamp", description="Day (midnight UTC)."),
        Column("price", "float", min_value=0.01),
        Column("units", "int", min_value=0),
    ),
    primary_key=("product_id", "date"),
    time_column="date",
    foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (CUSTOMERS, PRODUCTS, EVENTS, ORDERS, DAILY_SALES)}
"""Every raw table, in dependency order (referenced tables first)."""
