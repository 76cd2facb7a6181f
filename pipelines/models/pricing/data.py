"""The pricing data set: time split, demand fit, restock levels, guardrailed catalogue, the two simulators and the
logged holdout prices for off-policy evaluation.

Two simulators, two jobs. The **fitted** one (``est_curves``: demand curves fitted on the training days) is where
everything is learnt and chosen: the agent trains in it, its checkpoints and the candidate (agent or baseline) are
selected on validation episodes in it, the season just before the holdout. The **scoring** one (``score_curves``)
only scores the holdout: the generator's true curves when the truth exists (it then also gives the oracle), else the
fitted curves again (user data: the holdout then measures the policy in the world as the data describe it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.data.schema import FamilyData
from pipelines.models.pricing.params import PricingParams
from pipelines.spec import DataContext

log = logging.getLogger(__name__)

FEATURE_SERVICE = "pricing_v1"
RECENT_DAYS = 28
"""Window of ``units_28d``: the sales rate the restocking policy orders for."""


@dataclass
class PricingData:
    """Everything the pricing family trains and evaluates on (built deterministically by :func:`prepare`)."""

    catalog: Any
    """:class:`pipelines.models.pricing.simulator.Catalog`."""
    est_curves: Any
    """Demand curves fitted on the training days: the agent's knowledge and the simulator it trains and is selected
    in."""
    score_curves: Any
    """Curves of the simulator that scores the holdout and gives the oracle: the truth when it exists, else
    ``est_curves``. Never used to train or select."""
    calendar: pd.DatetimeIndex
    holdout_start: int
    """Calendar position of the first holdout day."""
    eval_days: int
    episode_days: int
    eval_seeds: list[int]
    """Seeds of the holdout episodes (common random numbers for every policy)."""
    val_seeds: list[int]
    """Seeds of the validation episodes (the ``eval_days`` before the holdout, fitted simulator)."""
    logged: pd.DataFrame
    """Holdout rows of ``daily_sales`` for off-policy evaluation: ``row, day, price, units, last_price``."""
    propensity: np.ndarray
    """``(products, levels)``: estimated logging policy (training days)."""
    logged_counts: np.ndarray
    truth: bool
    holdout_sales: pd.DataFrame
    store_units: int
    """Products whose recent sales rate came from the feature store (the rest from raw sales)."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def holdout_days(self) -> pd.DatetimeIndex:
        return self.calendar[self.holdout_start : self.holdout_start + self.eval_days]

    @property
    def val_start(self) -> int:
        """Calendar position of the first validation day (the validation season ends where the holdout starts)."""
        return self.holdout_start - self.eval_days

    @property
    def val_days(self) -> pd.DatetimeIndex:
        return self.calendar[self.val_start : self.holdout_start]

    def oracle(self):
        """Optimal plan and its rollouts over the holdout, in the scoring simulator (computed once)."""
        if "oracle" not in self._cache:
            from pipelines.models.pricing import oracle

            plan = oracle.solve(self.catalog, self.score_curves, self.holdout_days)
            self._cache["oracle"] = (plan, self.rollout(plan.policy()))
        return self._cache["oracle"]

    def rollout(self, policy):
        """Holdout episodes of ``policy`` in the scoring simulator."""
        from pipelines.models.pricing.simulator import rollout

        return rollout(self.catalog, self.score_curves, self.calendar, policy, self.holdout_start, self.eval_days,
                       self.eval_seeds)

    def val_oracle(self):
        """Rollouts of the fitted simulator's optimum over the validation season (computed once)."""
        if "val_oracle" not in self._cache:
            from pipelines.models.pricing import oracle

            plan = oracle.solve(self.catalog, self.est_curves, self.val_days)
            self._cache["val_oracle"] = self.val_rollout(plan.policy())
        return self._cache["val_oracle"]

    def val_rollout(self, policy):
        """Validation episodes of ``policy`` in the fitted simulator (never the truth, never the holdout)."""
        from pipelines.models.pricing.simulator import rollout

        return rollout(self.catalog, self.est_curves, self.calendar, policy, self.val_start, self.eval_days,
                       self.val_seeds)


def _recent_units(ctx: DataContext, products: pd.DataFrame, sales: pd.DataFrame,
                  cutoff: pd.Timestamp) -> tuple[np.ndarray, int]:
    """Units per day over the 28 days before ``cutoff``: Feast ``units_28d`` (point in time), else raw sales."""
    from pipelines.features import store

    ids = products["product_id"].astype(str)
    entities = pd.DataFrame({"product_id": ids.to_numpy(), "event_timestamp": cutoff})
    frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE)
    from_store = pd.to_numeric(frame["units_28d"], errors="coerce").to_numpy(dtype=float) / RECENT_DAYS
    window = sales[(sales["date"] >= cutoff - pd.Timedelta(days=RECENT_DAYS)) & (sales["date"] < cutoff)]
    grouped = window.groupby(window["product_id"].astype(str))
    raw = (grouped["units"].sum() / grouped.size()).reindex(ids).to_numpy(dtype=float)
    missing = ~np.isfinite(from_store)
    if missing.any():
        log.info("pricing: %d of %d products have no feature-store snapshot at %s; using raw daily_sales",
                 int(missing.sum()), len(ids), cutoff.date())
    rate = np.where(missing, raw, from_store)
    return np.nan_to_num(rate, nan=0.0), int((~missing).sum())


def prepare(ctx: DataContext, params: PricingParams) -> PricingData:
    """Time split, demand fit, restock levels, guardrailed catalogue, simulator curves and the logged holdout.

    Raises:
        ValueError: if ``daily_sales`` is empty or too short for training, validation and the holdout.
    """
    from pipelines.data.kinds import require
    from pipelines.models.pricing import ope
    from pipelines.models.pricing.demand import day_numbers, fit_curves, truth_curves
    from pipelines.models.pricing.simulator import Guardrails, make_catalog

    require(ctx, "pricing")  # products with base_price and cost, daily price/units rows
    products = ctx.table("products")
    # Products without sales (e.g. catalogue-only rows) have nothing to price from.
    products = products[products["product_id"].isin(ctx.table("daily_sales")["product_id"])].reset_index(drop=True)
    sales = ctx.table("daily_sales").copy()
    if sales.empty:
        raise ValueError("pricing needs daily_sales (price and units per product and day); the table is empty")
    sales["date"] = pd.to_datetime(sales["date"], utc=True).dt.normalize()
    sales["product_id"] = sales["product_id"].astype(str)
    sales = sales.dropna(subset=["price", "units"]).sort_values(["product_id", "date"]).reset_index(drop=True)
    calendar = pd.date_range(sales["date"].min(), sales["date"].max(), freq="D")
    holdout_start = len(calendar) - params.eval_days
    if holdout_start < max(params.eval_days, 2 * params.episode_days):
        raise ValueError(
            f"pricing needs at least {max(params.eval_days, 2 * params.episode_days) + params.eval_days} days of "
            f"daily_sales (training, validation and a {params.eval_days}-day holdout); the batch has "
            f"{len(calendar)}: lower eval_days/episode_days or bring more history"
        )
    cutoff = calendar[holdout_start]
    train_sales = sales[sales["date"] < cutoff]
    holdout_sales = sales[sales["date"] >= cutoff].reset_index(drop=True)
    est = fit_curves(train_sales, products, elasticity_prior=params.elasticity_prior)

    rate, store_units = _recent_units(ctx, products, train_sales, cutoff)
    order_up_to = np.maximum(np.ceil(params.restock_cover * rate * params.restock_every_days), 1)
    catalog = make_catalog(
        products, order_up_to,
        Guardrails(min_margin=params.min_margin, max_price_ratio=params.max_price_ratio,
                   max_daily_change=params.max_daily_change),
        n_levels=params.n_levels, min_multiplier=params.min_multiplier, max_multiplier=params.max_multiplier,
        restock_every=params.restock_every_days, holding_rate=params.holding_cost_rate,
    )
    if ctx.truth_dir is not None:  # the truth scores the holdout; nothing above (or in fit) may read it
        from pipelines.data.generator import load_truth

        _, products_truth, _ = load_truth(ctx.truth_dir)
        score_curves = truth_curves(products, products_truth)
    else:
        score_curves = est

    # Logged decisions: the holdout days, with yesterday's logged price as the context's last price.
    index = pd.Index(catalog.product_ids)
    sales["row"] = index.get_indexer(sales["product_id"])
    sales = sales[sales["row"] >= 0]
    sales["last_price"] = sales.groupby("row")["price"].shift(1).fillna(sales["price"])
    logged = sales[sales["date"] >= cutoff]
    logged = pd.DataFrame({
        "row": logged["row"].to_numpy(np.int64), "day": day_numbers(pd.DatetimeIndex(logged["date"])),
        "price": logged["price"].to_numpy(float), "units": logged["units"].to_numpy(float),
        "last_price": logged["last_price"].to_numpy(float),
    })
    train_rows = sales[sales["date"] < cutoff]
    levels = catalog.level_of_price(train_rows["row"].to_numpy(np.int64), train_rows["price"].to_numpy(float))
    propensity, counts = ope.propensities(train_rows["row"].to_numpy(np.int64), levels, catalog.n_products,
                                          catalog.n_levels)
    seeds = [int(s) for s in np.random.SeedSequence(params.seed).generate_state(params.eval_seeds)]
    val_seeds = [int(s) for s in np.random.SeedSequence([params.seed, 1]).generate_state(params.eval_seeds)]
    return PricingData(
        catalog=catalog, est_curves=est, score_curves=score_curves, calendar=calendar, holdout_start=holdout_start,
        eval_days=params.eval_days, episode_days=params.episode_days, eval_seeds=seeds, val_seeds=val_seeds,
        logged=logged,
        propensity=propensity, logged_counts=counts, truth=ctx.truth_dir is not None, holdout_sales=holdout_sales,
        store_units=store_units,
    )


def data_check(tables) -> list[str]:
    """Column-level needs of a bring-your-own batch: margins need base price and cost; decisions are daily."""
    from pipelines.data.frequency import sales_frequency

    reasons = []
    products = tables["products"]
    sold = tables["daily_sales"]["product_id"].astype(str).unique()
    priced = products[products["product_id"].astype(str).isin(sold)]
    for col in ("base_price", "cost"):
        if priced.empty or priced[col].isna().any():
            reasons.append(f"products.{col} is missing for products with sales (pricing needs it for margins)")
    freq = sales_frequency(tables["daily_sales"])
    if freq not in (None, "daily"):
        reasons.append(f"daily_sales is {freq}; pricing sets a price per day and needs daily rows")
    return reasons


NEEDS = FamilyData(("products", "daily_sales"), kind="a daily price/units history plus products with "
                   "`base_price` and `cost`",
                   note="needs daily rows and `base_price` and `cost` for every product it prices",
                   check=data_check)
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""
