"""Bring your own data for LTV: a bare transaction log (customer, date, amount) expanded into a ShopFlow batch.

The LTV family needs only the orders. ``shopflow data import`` accepts a ``transactions`` file (customer_id, date,
amount) and stores it as ``orders`` (:func:`pipelines.data.transactions.orders_from_transactions`); every other
table may be left out (the feature build then takes customers from the orders, signed up at their first
purchase). :func:`tables_from_transactions` builds the older, complete five-table form (placeholder customers and
product, no events and no daily sales) for direct :class:`pipelines.spec.DataContext` use in tests and notebooks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.data.transactions import PLACEHOLDER_PRODUCT, orders_from_transactions


def tables_from_transactions(transactions: pd.DataFrame, customer: str = "customer_id", date: str = "date",
                             amount: str = "amount") -> dict[str, pd.DataFrame]:
    """The five raw tables of a batch from a transaction log.

    Args:
        transactions: One row per purchase (or order line) with a customer id, a date or time, and an amount.
        customer, date, amount: Column names in ``transactions``.

    Returns:
        ``{table name: frame}`` following ``pipelines.data.schema``.
    """
    orders = orders_from_transactions(transactions, customer, date, amount)
    tx = orders
    first = tx.groupby("customer_id", sort=True)["order_ts"].min()
    customers = pd.DataFrame({"customer_id": first.index.astype(str), "signup_ts": first.to_numpy(),
                              "region": "unknown", "segment": "unknown"})
    customers["signup_ts"] = pd.to_datetime(customers["signup_ts"], utc=True)
    products = pd.DataFrame({"product_id": [PLACEHOLDER_PRODUCT], "category": ["unknown"], "brand": ["unknown"],
                             "base_price": [max(float(tx["amount"].median()), 0.01)], "cost": [0.0],
                             "image_file": [None]})
    events = pd.DataFrame({
        "event_id": pd.Series(dtype=str), "customer_id": pd.Series(dtype=str), "product_id": pd.Series(dtype=str),
        "event_type": pd.Series(dtype=str), "event_ts": pd.Series(dtype="datetime64[ns, UTC]"),
    })
    daily_sales = pd.DataFrame({"product_id": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns, UTC]"),
                                "price": pd.Series(dtype="float64"), "units": pd.Series(dtype="int64")})
    return {"customers": customers, "products": products, "events": events, "orders": orders,
            "daily_sales": daily_sales}


def write_batch(tables: dict[str, pd.DataFrame], batch_dir: Path) -> Path:
    """Write ``tables`` as a batch folder (one normalised Parquet file per table) and return the folder."""
    from pipelines.data.io import normalise, write_table
    from pipelines.data.schema import TABLES

    for name, frame in tables.items():
        write_table(normalise(frame, TABLES[name]), Path(batch_dir), name)
    return Path(batch_dir)
