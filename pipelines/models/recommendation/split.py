"""The two evaluation protocols of the recommendation family: a time split and a per-user random split.

``time`` (the default, what a shop lives with): train on everything before ``end - test_days``, hold out the
novel purchases after it. ``random`` (the field's standard protocol for rating data such as MovieLens): each
customer's distinct products are shuffled with the seed and ``test_fraction`` of them held out, with every event
of a held-out pair; the relevant ones are the held-out positives (purchases, orders or ratings at or above the
threshold). Either split applied again to its own training part gives the validation split that selects the
candidate, so validation mirrors the holdout's protocol and never touches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.models.recommendation import interactions as rd


@dataclass
class Split:
    """A training part (its interactions and the raw rows they came from) and the holdout scored against it."""

    train: rd.Interactions
    holdout: rd.Holdout
    events: pd.DataFrame
    """Events of the training part (a nested split of them gives the validation split)."""
    orders: pd.DataFrame
    cutoff: pd.Timestamp
    """Time split: start of the holdout window; random split: the end of the data (decay reference)."""
    end: pd.Timestamp


def split_log(events: pd.DataFrame, orders: pd.DataFrame, items: np.ndarray, weights: dict[str, float],
              end: pd.Timestamp, *, protocol: str, test_days: int, test_fraction: float, seed: int,
              half_life_days: float | None = None) -> Split:
    """Split the event log (and order lines) by ``protocol`` (``"time"`` or ``"random"``)."""
    if protocol == "time":
        cutoff = end - pd.Timedelta(days=test_days)
        train = rd.build_interactions(events, orders, items, cutoff, weights, half_life_days)
        holdout = rd.build_holdout(events, orders, train, cutoff, end)
        return Split(train, holdout, events[events["event_ts"] < cutoff], orders[orders["order_ts"] < cutoff],
                     cutoff, end)
    return random_split(events, orders, items, weights, end, test_fraction, seed, half_life_days)


def held_pairs(events: pd.DataFrame, orders: pd.DataFrame, items: np.ndarray, weights: dict[str, float],
               fraction: float, seed: int) -> pd.MultiIndex:
    """The (customer, product) pairs held out: ``round(fraction * n)`` of each customer's ``n`` distinct products.

    Only pairs the training matrix could hold count (a weighted event or an order line of a catalogue product).
    """
    ev = events[events["event_type"].astype(str).map(weights).fillna(0.0).to_numpy() > 0]
    pairs = pd.concat([ev[["customer_id", "product_id"]], orders[["customer_id", "product_id"]]],
                      ignore_index=True).astype(str).drop_duplicates()
    pairs = pairs[pairs["product_id"].isin(items)].sort_values(["customer_id", "product_id"])
    pairs = pairs.iloc[np.random.default_rng(seed).permutation(len(pairs))]
    rank = pairs.groupby("customer_id").cumcount().to_numpy()
    size = pairs.groupby("customer_id")["customer_id"].transform("size").to_numpy()
    held = pairs[rank >= np.round((1.0 - fraction) * size)]
    return pd.MultiIndex.from_frame(held[["customer_id", "product_id"]])


def _pair_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame["customer_id"].astype(str), frame["product_id"].astype(str)])


def random_split(events: pd.DataFrame, orders: pd.DataFrame, items: np.ndarray, weights: dict[str, float],
                 end: pd.Timestamp, fraction: float, seed: int, half_life_days: float | None = None) -> Split:
    """Per-customer random split of the distinct products (see the module); the holdout keeps held-out positives."""
    held = held_pairs(events, orders, items, weights, fraction, seed)
    ev_held = _pair_index(events).isin(held)
    od_held = _pair_index(orders).isin(held)
    train_events, train_orders = events[~ev_held], orders[~od_held]
    train = rd.build_interactions(train_events, train_orders, items, end, weights, half_life_days)
    buys = rd._purchases(events[ev_held], orders[od_held], lo=None, hi=None)
    buys = buys[buys["customer_id"].isin(train.user_ids)]
    rows = np.searchsorted(train.user_ids, buys["customer_id"].to_numpy())
    cols = np.searchsorted(items, buys["product_id"].to_numpy())
    users, starts = np.unique(rows, return_index=True)
    relevant = np.split(cols, starts[1:]) if len(rows) else []
    holdout = rd.Holdout(users=users, relevant=[np.unique(r) for r in relevant], cold_users=0, repeat_purchases=0)
    return Split(train, holdout, train_events, train_orders, end, end)
