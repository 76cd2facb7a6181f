"""Implicit feedback from the event log, split by time into training interactions and a purchase holdout.

Training interactions are every event strictly before the cutoff, weighted by type (view < add_to_cart <
purchase) and optionally decayed with a half-life. The holdout is every purchase in ``[cutoff, end)`` by a
customer seen in training, of a product that customer had not bought before the cutoff: recommendations exclude
already-bought products, so repeat purchases are unreachable by construction and left out of the relevant sets.

Explicit ratings arrive as events too (:func:`ratings_as_events`): a rating at or above the threshold is a
``purchase``, a lower one a ``rated`` event. Both are *seen*: never recommended back to that customer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

DAY = pd.Timedelta(days=1)

SEEN_TYPES = ("purchase", "rated")
"""Event types that mark a product as consumed by the customer: it is never recommended back to them."""


@dataclass
class Interactions:
    """A customer x product matrix of implicit-feedback weights, with the id maps of its rows and columns."""

    user_ids: np.ndarray
    """Customer id of each row (str)."""
    item_ids: np.ndarray
    """Product id of each column (str): the whole catalogue, sorted."""
    weights: sparse.csr_matrix
    """Summed (decayed) event weights, float32."""
    bought: sparse.csr_matrix
    """1 where the customer purchased or rated the product (seen: never recommended back to them)."""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass
class Holdout:
    """Relevant products (column indices) per evaluated customer (row index of the training matrix)."""

    users: np.ndarray
    relevant: list[np.ndarray]
    cold_users: int
    """Customers buying in the window without any training interaction (not evaluated; they get the fallback)."""
    repeat_purchases: int
    """Holdout purchases of products the customer had already bought (unreachable, excluded)."""


def ratings_as_events(ratings: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Explicit ratings as implicit events: a rating ``>= threshold`` is a ``purchase`` (a positive), a lower one
    a ``rated`` event.

    A positive rating trains like a purchase and counts as relevant in the holdout. A low rating is still an
    interaction (the customer chose to watch or buy it; weighted ``weight_rating_low``) but not a positive. Both
    are *seen*: the product is never recommended back to that customer.

    Returns:
        Rows in the ``events`` schema (``event_id`` ``R<n>``).
    """
    positive = ratings["rating"].astype(float).to_numpy() >= threshold
    return pd.DataFrame({
        "event_id": [f"R{i}" for i in range(len(ratings))],
        "customer_id": ratings["customer_id"].astype(str).to_numpy(),
        "product_id": ratings["product_id"].astype(str).to_numpy(),
        "event_type": np.where(positive, "purchase", "rated"),
        "event_ts": pd.to_datetime(ratings["ts"], utc=True).to_numpy(),
    }).astype({"event_ts": "datetime64[ns, UTC]"})


def bare_catalogue(events: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """A ``products`` table of every product named by ``events`` or ``orders``, with unknown category and price."""
    ids = np.sort(pd.concat([events["product_id"], orders["product_id"]]).astype(str).unique())
    return pd.DataFrame({"product_id": ids, "category": "unknown", "brand": None, "base_price": np.nan,
                         "cost": np.nan, "image_file": None})


def catalogue(products: pd.DataFrame) -> np.ndarray:
    """Sorted product ids of the catalogue (events naming a product outside it are dropped)."""
    return np.sort(products["product_id"].astype(str).unique())


def event_weights(events: pd.DataFrame, type_weights: dict[str, float], cutoff: pd.Timestamp,
                  half_life_days: float | None) -> np.ndarray:
    """Weight of each event: its type's weight, times ``0.5 ** (age / half_life)`` when a half-life is set."""
    w = events["event_type"].astype(str).map(type_weights).fillna(0.0).to_numpy(dtype="float64")
    if half_life_days:
        age = ((cutoff - events["event_ts"]) / DAY).to_numpy(dtype="float64")
        w = w * np.power(0.5, np.clip(age, 0.0, None) / half_life_days)
    return w


def build_interactions(events: pd.DataFrame, orders: pd.DataFrame, item_ids: np.ndarray, cutoff: pd.Timestamp,
                       type_weights: dict[str, float], half_life_days: float | None = None) -> Interactions:
    """The training matrix from everything strictly before ``cutoff``.

    Rows are customers with at least one weighted event before the cutoff (sorted ids). ``bought`` marks purchase
    events and order lines before the cutoff (either table may be the one a user's import fills in).
    """
    ev = events.loc[events["event_ts"] < cutoff, ["customer_id", "product_id", "event_type", "event_ts"]]
    ev = ev.assign(customer_id=ev["customer_id"].astype(str), product_id=ev["product_id"].astype(str))
    ev = ev[ev["product_id"].isin(item_ids)]
    w = event_weights(ev, type_weights, cutoff, half_life_days)
    ev, w = ev[w > 0], w[w > 0]
    user_ids = np.sort(ev["customer_id"].unique())
    rows = np.searchsorted(user_ids, ev["customer_id"].to_numpy())
    cols = np.searchsorted(item_ids, ev["product_id"].to_numpy())
    shape = (len(user_ids), len(item_ids))
    weights = sparse.csr_matrix((w.astype("float32"), (rows, cols)), shape=shape)  # duplicates are summed
    weights.sum_duplicates()

    buys = _purchases(events, orders, lo=None, hi=cutoff, types=SEEN_TYPES)
    buys = buys[buys["customer_id"].isin(user_ids) & buys["product_id"].isin(item_ids)]
    b_rows = np.searchsorted(user_ids, buys["customer_id"].to_numpy())
    b_cols = np.searchsorted(item_ids, buys["product_id"].to_numpy())
    bought = sparse.csr_matrix((np.ones(len(buys), dtype="float32"), (b_rows, b_cols)), shape=shape)
    bought.sum_duplicates()
    bought.data[:] = 1.0
    return Interactions(user_ids=user_ids, item_ids=item_ids, weights=weights, bought=bought)


def _purchases(events: pd.DataFrame, orders: pd.DataFrame, lo: pd.Timestamp | None,
               hi: pd.Timestamp | None, types: tuple[str, ...] = ("purchase",)) -> pd.DataFrame:
    """Distinct (customer_id, product_id) purchases in ``[lo, hi)`` from events of ``types`` and order lines."""
    ev = events.loc[events["event_type"].astype(str).isin(types), ["customer_id", "product_id", "event_ts"]]
    ev = ev.rename(columns={"event_ts": "ts"})
    od = orders[["customer_id", "product_id", "order_ts"]].rename(columns={"order_ts": "ts"})
    both = pd.concat([ev, od], ignore_index=True)
    keep = np.ones(len(both), dtype=bool)
    if lo is not None:
        keep &= (both["ts"] >= lo).to_numpy()
    if hi is not None:
        keep &= (both["ts"] < hi).to_numpy()
    out = both.loc[keep, ["customer_id", "product_id"]].astype(str).drop_duplicates()
    return out.sort_values(["customer_id", "product_id"]).reset_index(drop=True)


def build_holdout(events: pd.DataFrame, orders: pd.DataFrame, train: Interactions, cutoff: pd.Timestamp,
                  end: pd.Timestamp) -> Holdout:
    """Novel purchases in ``[cutoff, end)`` of customers seen in training, grouped per customer."""
    buys = _purchases(events, orders, lo=cutoff, hi=end)
    buys = buys[buys["product_id"].isin(train.item_ids)]
    known = buys["customer_id"].isin(train.user_ids)
    cold_users = int(buys.loc[~known, "customer_id"].nunique())
    buys = buys[known]
    rows = np.searchsorted(train.user_ids, buys["customer_id"].to_numpy())
    cols = np.searchsorted(train.item_ids, buys["product_id"].to_numpy())
    repeat = (np.asarray(train.bought[rows, cols]).ravel() > 0) if len(rows) else np.zeros(0, dtype=bool)
    rows, cols = rows[~repeat], cols[~repeat]
    users, starts = np.unique(rows, return_index=True)
    relevant = np.split(cols, starts[1:]) if len(rows) else []
    return Holdout(users=users, relevant=[np.unique(r) for r in relevant], cold_users=cold_users,
                   repeat_purchases=int(repeat.sum()))


def popularity(train: Interactions) -> np.ndarray:
    """Item popularity: total training weight of each product (the ranking of the popularity baseline)."""
    return np.asarray(train.weights.sum(axis=0)).ravel().astype("float64")


def item_side_features(products: pd.DataFrame, item_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Side features of each catalogue product: category one-hot and log price relative to its category.

    The relative price is ``log(base_price) - median log(base_price) of the category``: how premium a product is
    within its category (customers differ in how much they lean towards dearer products).

    Returns:
        ``(len(item_ids), n_categories + 1)`` float32 features and their names.
    """
    prod = products.assign(product_id=products["product_id"].astype(str)).drop_duplicates("product_id")
    prod = prod.set_index("product_id").reindex(np.asarray(item_ids, dtype=str))
    cat = prod["category"].astype("string").fillna("unknown").astype(str)
    categories = sorted(cat.unique())
    onehot = (cat.to_numpy()[:, None] == np.array(categories)[None, :]).astype("float32")
    log_price = np.log(prod["base_price"].astype(float).clip(lower=0.01))
    rel = (log_price - log_price.groupby(cat).transform("median")).fillna(0.0).to_numpy(dtype="float32")
    return np.hstack([onehot, rel[:, None]]), [f"category={c}" for c in categories] + ["relative_log_price"]
