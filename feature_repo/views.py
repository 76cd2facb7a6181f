"""Feature views: one per feature table of ``pipelines.features.build`` (same name, same columns).

Customer snapshots are weekly, so a 14-day TTL always finds the latest one and tolerates one missed run; product
snapshots are daily (TTL 3 days). The entity column is part of each schema so ``feast apply`` needs no data to
infer it.
"""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from entities import customer, product
from sources import (
    cart_push_source,
    customer_activity_source,
    customer_category_mix_source,
    customer_rfm_source,
    product_sales_source,
)

CUSTOMER_TTL = timedelta(days=14)
PRODUCT_TTL = timedelta(days=3)

customer_rfm = FeatureView(
    name="customer_rfm",
    entities=[customer],
    ttl=CUSTOMER_TTL,
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="recency_days", dtype=Float64, description="Days since the last order (since signup if none)."),
        Field(name="frequency_90d", dtype=Int64, description="Order lines in the last 90 days."),
        Field(name="monetary_90d", dtype=Float64, description="Amount spent in the last 90 days."),
        Field(name="frequency_365d", dtype=Int64, description="Order lines in the last 365 days."),
        Field(name="monetary_365d", dtype=Float64, description="Amount spent in the last 365 days."),
        Field(name="avg_order_value", dtype=Float64, description="Lifetime amount per order line (0 if none)."),
        Field(name="tenure_days", dtype=Float64, description="Days since signup."),
    ],
    source=customer_rfm_source,
    online=True,
    tags={"entity": "customer", "cadence": "weekly"},
)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=CUSTOMER_TTL,
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="views_7d", dtype=Int64, description="Product views in the last 7 days."),
        Field(name="views_30d", dtype=Int64, description="Product views in the last 30 days."),
        Field(name="carts_30d", dtype=Int64, description="Add-to-cart events in the last 30 days."),
        Field(name="purchases_30d", dtype=Int64, description="Purchase events in the last 30 days."),
        Field(name="active_days_30d", dtype=Int64, description="Days with any event among the last 30."),
        Field(name="cart_to_purchase_30d", dtype=Float64, description="purchases_30d / carts_30d (0 if no carts)."),
    ],
    source=customer_activity_source,
    online=True,
    tags={"entity": "customer", "cadence": "weekly"},
)

customer_category_mix = FeatureView(
    name="customer_category_mix",
    entities=[customer],
    ttl=CUSTOMER_TTL,
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="n_categories_90d", dtype=Int64, description="Distinct categories ordered in the last 90 days."),
        Field(
            name="top_category_share_90d",
            dtype=Float64,
            description="Share of the most ordered category among the last 90 days' order lines (0 if none).",
        ),
    ],
    source=customer_category_mix_source,
    online=True,
    tags={"entity": "customer", "cadence": "weekly"},
)

product_sales = FeatureView(
    name="product_sales",
    entities=[product],
    ttl=PRODUCT_TTL,
    schema=[
        Field(name="product_id", dtype=String),
        Field(name="price_7d_avg", dtype=Float64, description="Mean daily price over 7 days (list price if no sales)."),
        Field(name="units_7d", dtype=Int64, description="Units sold store-wide in the last 7 days."),
        Field(name="units_28d", dtype=Int64, description="Units sold store-wide in the last 28 days."),
        Field(name="views_7d", dtype=Int64, description="Product views in the last 7 days."),
    ],
    source=product_sales_source,
    online=True,
    tags={"entity": "product", "cadence": "daily"},
)

customer_cart = FeatureView(
    name="customer_cart",
    entities=[customer],
    ttl=timedelta(days=2),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="cart_product_ids", dtype=String, description="Products in the cart now, comma-separated."),
        Field(name="cart_size", dtype=Int64, description="Number of products in the cart."),
    ],
    source=cart_push_source,
    online=True,
    tags={"entity": "customer", "cadence": "realtime"},
)
