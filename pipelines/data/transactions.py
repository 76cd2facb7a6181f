"""The ``transactions`` shorthand of the import: a bare log (customer, date, amount) stored as ``orders`` lines.

A schema-level conversion (see ``TRANSACTIONS`` in :mod:`pipelines.data.schema`): every family that reads orders
(churn, ltv, recommendation) then trains on a transaction log as on order lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLACEHOLDER_PRODUCT = "ITEM"


def orders_from_transactions(transactions: pd.DataFrame, customer: str = "customer_id", date: str = "date",
                             amount: str = "amount") -> pd.DataFrame:
    """Order lines (the ``orders`` schema) from a transaction log, one line per transaction.

    Lines are numbered ``O0000001, ...`` in time order (ties by customer), with product :data:`PLACEHOLDER_PRODUCT`,
    quantity 1 and ``unit_price`` = ``amount``. This is how ``shopflow data import`` stores a ``transactions`` file.

    Args:
        transactions: One row per purchase (or order line) with a customer id, a date or time, and an amount.
        customer, date, amount: Column names in ``transactions``.

    Raises:
        ValueError: if an amount is negative.
    """
    tx = pd.DataFrame({
        "customer_id": transactions[customer].astype(str).to_numpy(),
        "order_ts": pd.to_datetime(transactions[date], utc=True).to_numpy(),
        "amount": transactions[amount].astype("float64").to_numpy(),
    })
    tx["order_ts"] = pd.to_datetime(tx["order_ts"], utc=True)
    if (tx["amount"] < 0).any():
        raise ValueError("transaction amounts must be non-negative (net refunds out before importing)")
    tx = tx.sort_values(["order_ts", "customer_id", "amount"], kind="stable").reset_index(drop=True)
    width = max(7, len(str(len(tx))))
    return pd.DataFrame({
        "order_id": [f"O{i:0{width}d}" for i in range(1, len(tx) + 1)],
        "customer_id": tx["customer_id"],
        "product_id": PLACEHOLDER_PRODUCT,
        "order_ts": tx["order_ts"],
        "quantity": np.ones(len(tx), dtype="int64"),
        "unit_price": tx["amount"],
        "amount": tx["amount"],
    })
