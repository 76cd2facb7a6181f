"""Per-unit results of a pricing policy and the primary metric computed from them (the gate's contract).

A unit is one product in one evaluation episode (``<product_id>@<episode>``): its realised profit over the episode
and the optimal policy's on the same demand shocks (common random numbers). ``profit_ratio_to_oracle`` is the
ratio of the sums, so it can be computed from any resample of the units (the gate's paired bootstrap resamples
product-episodes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.models.pricing.data import PricingData
from pipelines.models.pricing.simulator import Rollout


def unit_frame(runs: Rollout, optimum: Rollout, product_ids: np.ndarray, episodes: list[int]) -> pd.DataFrame:
    """One row per product-episode: ``product_id, episode, profit, oracle_profit`` (index ``product@episode``).

    ``runs`` and ``optimum`` must come from the same episodes (same seeds, calendar and simulator).
    """
    profit = runs.reward.sum(axis=1)  # (episodes, products)
    best = optimum.reward.sum(axis=1)
    ids = np.asarray(product_ids).astype(str)
    episode = np.repeat(np.arange(len(episodes)), len(ids))
    product = np.tile(ids, len(episodes))
    return pd.DataFrame(
        {"product_id": product, "episode": episode, "profit": profit.ravel(), "oracle_profit": best.ravel()},
        index=pd.Index([f"{p}@{e}" for p, e in zip(product, episode)], name="unit"),
    )


def profit_ratio(frame: pd.DataFrame) -> float:
    """``profit_ratio_to_oracle`` of a per-unit frame (or a resample of it): total profit / optimal total profit.

    NaN when the optimal total is not positive (the ratio is then meaningless).
    """
    best = float(frame["oracle_profit"].sum())
    return float(frame["profit"].sum()) / best if best > 0 else float("nan")


def holdout(model, data: PricingData) -> pd.DataFrame:
    """Per-unit holdout results of a policy (the agent or a baseline candidate) in the scoring simulator."""
    _, optimum = data.oracle()
    return unit_frame(data.rollout(model.as_policy()), optimum, data.catalog.product_ids, data.eval_seeds)


def validation(model, data: PricingData) -> pd.DataFrame:
    """Per-unit validation results of a policy in the fitted simulator (the season before the holdout)."""
    return unit_frame(data.val_rollout(model.as_policy()), data.val_oracle(), data.catalog.product_ids,
                      data.val_seeds)
