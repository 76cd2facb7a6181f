"""Pricing: a DQN agent sets every product's daily price within guardrails, trained in a demand simulator.

Data: ``daily_sales`` (price and units per product and day) and ``products`` (base price, cost). Time split: the
last ``eval_days`` days are the holdout; everything the agent and its features use is fitted before it.

* Demand model: a Poisson log-log regression per product with shared weekday and yearly terms, fitted on the
  training days (:func:`pipelines.rl.demand.fit_curves`). It gives the agent's state features and, when no truth
  exists (data brought by a user), the simulator itself.
* Simulator (:mod:`pipelines.rl.env`): Poisson demand from the generator's true curves when the truth exists (else
  the fitted curves), lost sales beyond the stock on hand, restocks every ``restock_every_days`` up to
  ``restock_cover`` times the cycle's demand at the recent sales rate (``units_28d`` of the Feast FeatureService
  ``pricing_v1`` at the holdout start), profit reward net of holding cost.
* Agent (:class:`pipelines.rl.agents.PricingPolicy`): one DQN shared by all products, acting on 11 price levels
  (0.7-1.3 x base price) clipped to the guardrails (margin floor, ceiling, daily-change limit).
* Evaluation on the holdout days, several seeds with common random numbers: profit of the agent, of static pricing
  (base price), of the myopic price from the fitted elasticities and of the optimal policy (dynamic programming
  over inventory with the simulator's curves). ``profit_ratio_to_oracle`` = agent profit / optimal profit. With
  the truth the optimum is the oracle; without it, it is the optimum of the fitted simulator and ``oracle`` is
  ``None``. Plus an off-policy estimate (IPS, SNIPS, DR) of the agent's value from the logged holdout prices.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pydantic import Field, model_validator

from pipelines.serving import batch_values
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedResponse, ServingSpec

log = logging.getLogger(__name__)

FEATURE_SERVICE = "pricing_v1"
RECENT_DAYS = 28
"""Window of ``units_28d``: the sales rate the restocking policy orders for."""


class PricingParams(ModelParams):
    """Hyper-parameters of the pricing family (override with ``--set key=value``)."""

    eval_days: int = Field(91, ge=14, le=365, description="Holdout days (evaluation episode; validation just before).")
    episode_days: int = Field(28, ge=7, le=182, description="Length of a training episode, in days.")
    eval_seeds: int = Field(5, ge=1, le=100, description="Evaluation episodes (demand draws) per policy.")
    n_levels: int = Field(11, ge=2, le=41, description="Number of price levels.")
    min_multiplier: float = Field(0.7, gt=0, le=1, description="Lowest level, as a multiple of the base price.")
    max_multiplier: float = Field(1.3, ge=1, le=5, description="Highest level, as a multiple of the base price.")
    min_margin: float = Field(0.10, ge=0, lt=1, description="Guardrail: floor = cost / (1 - min_margin).")
    max_price_ratio: float = Field(1.25, gt=0, le=10, description="Guardrail: ceiling = max_price_ratio * base.")
    max_daily_change: float = Field(0.10, gt=0, le=1, description="Guardrail: largest relative change per day.")
    restock_every_days: int = Field(7, ge=1, le=90)
    restock_cover: float = Field(1.0, gt=0, le=10, description="Order-up-to level in cycles of recent sales.")
    holding_cost_rate: float = Field(0.005, ge=0, le=1, description="Holding cost per unit-day, share of cost.")
    elasticity_prior: float = Field(2.0, ge=0, description="Shrinkage of fitted elasticities to their mean.")
    train_steps: int = Field(1500, ge=0, le=200_000, description="Simulator steps (all parallel episodes).")
    parallel_episodes: int = Field(256, ge=1, le=100_000)
    batch_size: int = Field(256, ge=8, le=65_536)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    gamma: float = Field(0.9, ge=0, lt=1)
    hidden: int = Field(64, ge=4, le=4096)
    eps_start: float = Field(0.3, ge=0, le=1)
    eps_end: float = Field(0.05, ge=0, le=1)
    exploration_fraction: float = Field(0.5, gt=0, le=1)
    target_tau: float = Field(0.01, gt=0, le=1)
    val_every: int = Field(250, ge=1)
    max_train_seconds: float = Field(120.0, gt=0, description="Safety stop (breaks run-to-run reproducibility).")
    ope_max_weight: float = Field(50.0, gt=1, description="Clip of the off-policy importance weights.")

    @model_validator(mode="after")
    def _check(self) -> PricingParams:
        if self.max_multiplier <= self.min_multiplier:
            raise ValueError("max_multiplier must exceed min_multiplier")
        return self


@dataclass
class PricingData:
    """Everything the pricing family trains and evaluates on (built deterministically by :func:`prepare`)."""

    catalog: Any
    """:class:`pipelines.rl.env.Catalog`."""
    est_curves: Any
    """Demand curves fitted on the training days (the agent's knowledge)."""
    sim_curves: Any
    """Curves of the simulator: the truth when it exists, else ``est_curves``."""
    calendar: pd.DatetimeIndex
    holdout_start: int
    """Calendar position of the first holdout day."""
    eval_days: int
    episode_days: int
    eval_seeds: list[int]
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

    def oracle(self):
        """Optimal plan and its rollouts over the holdout (computed once)."""
        if "oracle" not in self._cache:
            from pipelines.rl import oracle

            plan = oracle.solve(self.catalog, self.sim_curves, self.holdout_days)
            runs = self.rollout(plan.policy())
            self._cache["oracle"] = (plan, runs)
        return self._cache["oracle"]

    def rollout(self, policy):
        from pipelines.rl.env import rollout

        return rollout(self.catalog, self.sim_curves, self.calendar, policy, self.holdout_start, self.eval_days,
                       self.eval_seeds)


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
    from pipelines.rl import ope
    from pipelines.rl.demand import day_numbers, fit_curves, truth_curves
    from pipelines.rl.env import Guardrails, make_catalog

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
    if ctx.truth_dir is not None:
        from pipelines.data.generator import load_truth

        _, products_truth, _ = load_truth(ctx.truth_dir)
        sim = truth_curves(products, products_truth)
    else:
        sim = est

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
    return PricingData(
        catalog=catalog, est_curves=est, sim_curves=sim, calendar=calendar, holdout_start=holdout_start,
        eval_days=params.eval_days, episode_days=params.episode_days, eval_seeds=seeds, logged=logged,
        propensity=propensity, logged_counts=counts, truth=ctx.truth_dir is not None, holdout_sales=holdout_sales,
        store_units=store_units,
    )


def fit(data: PricingData, params: PricingParams):
    """Train the DQN agent in the simulator; returns the :class:`~pipelines.rl.agents.PricingPolicy` (on CPU)."""
    import torch

    from pipelines.rl.agents import DQNConfig, PricingPolicy, train_dqn
    from pipelines.utils import pick_device

    torch.manual_seed(params.seed)  # the network's initial weights, whatever the caller seeded before
    policy = PricingPolicy(data.catalog, data.est_curves, hidden=params.hidden)
    config = DQNConfig(
        steps=params.train_steps, parallel_episodes=params.parallel_episodes, episode_days=params.episode_days,
        batch_size=params.batch_size, learning_rate=params.learning_rate, gamma=params.gamma,
        eps_start=params.eps_start, eps_end=params.eps_end, exploration_fraction=params.exploration_fraction,
        target_tau=params.target_tau, val_every=params.val_every, max_seconds=params.max_train_seconds,
        seed=params.seed,
    )
    # Training episodes end before the holdout; the validation season is the eval_days just before it.
    h0 = data.holdout_start
    history = train_dqn(policy, data.sim_curves, data.calendar, (0, h0 - params.episode_days),
                        (h0 - params.eval_days, params.eval_days), config, device=pick_device())
    policy.history = {"step_reward": history.step_reward, "val_steps": history.val_steps,
                      "val_profit": history.val_profit}
    log.info("pricing DQN: %d transitions in %.1f s, best validation at step %d", history.transitions,
             history.seconds, history.best_step)
    return policy.cpu()


def score(model, data: PricingData) -> float:
    """Agent profit / optimal profit on the holdout episodes (same seeds, same demand shocks)."""
    _, oracle_runs = data.oracle()
    agent = data.rollout(model.as_policy())
    return float(agent.reward.sum() / oracle_runs.reward.sum())


def _violations(data: PricingData, runs) -> int:
    """Agent prices outside the floor/ceiling or beyond the daily-change limit (should be 0)."""
    cat = data.catalog
    price = runs.price
    outside = (price < cat.floor - 1e-9) | (price > cat.ceiling + 1e-9)
    start = cat.prices[:, cat.reference_level]
    previous = np.concatenate([np.broadcast_to(start, price[:, :1].shape), price[:, :-1]], axis=1)
    jump = np.abs(price / previous - 1) > cat.max_daily_change + 1e-9
    return int(outside.sum() + jump.sum())


def _off_policy(model, data: PricingData, params: PricingParams) -> dict[str, float]:
    """IPS / SNIPS / DM / DR estimates of the agent's profit per product-day on the logged holdout contexts."""
    from pipelines.rl import ope

    cat, est, sim, lg = data.catalog, data.est_curves, data.sim_curves, data.logged
    if lg.empty:
        return {}
    rows = lg["row"].to_numpy(np.int64)
    day = lg["day"].to_numpy(np.int64)
    logged_price = lg["price"].to_numpy(float)
    # The log has no stock-outs (store-wide sales): the agent decides as if stock were plentiful.
    target_level = model.act(rows, day, cat.order_up_to[rows], lg["last_price"].to_numpy(float))
    target_price = cat.prices[rows, target_level]
    cost = cat.cost[rows]
    season_est = est.season(day)
    result = ope.estimate(
        reward=(logged_price - cost) * lg["units"].to_numpy(float),
        logged_action=cat.level_of_price(rows, logged_price),
        target_action=cat.level_of_price(rows, target_price),
        propensity=data.propensity[rows, cat.level_of_price(rows, logged_price)],
        reward_hat_logged=(logged_price - cost) * est.mean(rows, logged_price, season_est),
        reward_hat_target=(target_price - cost) * est.mean(rows, target_price, season_est),
        max_weight=params.ope_max_weight,
    )
    sim_value = float(np.mean((target_price - cost) * sim.mean(rows, target_price, sim.season(day))))
    support = data.logged_counts[rows, cat.level_of_price(rows, target_price)] > 0
    out = {f"ope_{k}": v for k, v in result.items()}
    out.update(
        ope_sim_value=sim_value,
        ope_logging_value=float(np.mean((logged_price - cost) * lg["units"].to_numpy(float))),
        ope_support=float(support.mean()),
        ope_dr_rel_error=float(result["dr"] / sim_value - 1) if sim_value else float("nan"),
        ope_ips_rel_error=float(result["ips"] / sim_value - 1) if sim_value else float("nan"),
    )
    return out


def evaluate(model, data: PricingData, params: PricingParams) -> Evaluation:
    """Agent vs static, myopic and optimal pricing on the holdout episodes, off-policy estimates and plots."""
    from pipelines.rl.demand import holdout_wape
    from pipelines.rl.env import plugin_policy, static_policy

    cat = data.catalog
    plan, oracle_runs = data.oracle()
    runs = {
        "agent": data.rollout(model.as_policy()),
        "static": data.rollout(static_policy(cat)),
        "myopic": data.rollout(plugin_policy(cat, data.est_curves)),
        "oracle": oracle_runs,
    }
    per_seed = {k: r.profit_per_seed() for k, r in runs.items()}
    total = {k: float(v.sum()) for k, v in per_seed.items()}
    ratio = {k: total[k] / total["oracle"] for k in total}
    n_seeds, cells = len(data.eval_seeds), cat.n_products * data.eval_days
    regret = (total["oracle"] - total["agent"]) / n_seeds
    metrics = {
        "profit_ratio_to_oracle": ratio["agent"],
        "profit_ratio_std": float(np.std(per_seed["agent"] / per_seed["oracle"])),
        "regret": regret,
        "regret_per_product_day": regret / cells,
        "regret_share": 1.0 - ratio["agent"],
        **{f"{k}_profit": total[k] / n_seeds for k in total},
        "oracle_expected_profit": float(plan.expected_profit.sum()),
        "uplift_vs_static": total["agent"] / total["static"] - 1.0,
        "uplift_vs_myopic": total["agent"] / total["myopic"] - 1.0,
        **{f"{k}_stockout_rate": float(runs[k].stockout.mean()) for k in ("agent", "static", "oracle")},
        **{f"{k}_mean_price_ratio": float((runs[k].price / cat.base_price).mean()) for k in ("agent", "oracle")},
        "guardrail_violations": float(_violations(data, runs["agent"])),
        "demand_holdout_wape": holdout_wape(data.est_curves, data.holdout_sales),
        "n_products": float(cat.n_products),
        "holdout_days": float(data.eval_days),
        "eval_seeds": float(n_seeds),
        "train_best_step": float(model.training_summary.get("best_step", 0)),
        "train_transitions": float(model.training_summary.get("transitions", 0)),
        "train_seconds": float(model.training_summary.get("seconds", 0.0)),
    }
    if data.truth:
        metrics["elasticity_mae"] = float(np.mean(np.abs(data.est_curves.elasticity - data.sim_curves.elasticity)))
        metrics["truth_holdout_wape"] = holdout_wape(data.sim_curves, data.holdout_sales)
    metrics.update(_off_policy(model, data, params))

    figures = {
        "season_policy.png": _season_figure(data, runs),
        "training_reward.png": _training_figure(model),
        "price_vs_elasticity.png": _elasticity_figure(data, runs),
    }
    if "ope_dr" in metrics:
        figures["off_policy.png"] = _ope_figure(metrics)
    return Evaluation(
        metrics=metrics,
        baselines={"static_price": ratio["static"], "myopic_fitted": ratio["myopic"]},
        oracle=1.0 if data.truth else None,
        figures=figures,
        extra_params={
            "holdout_start": str(data.calendar[data.holdout_start].date()),
            "simulator": "generator truth" if data.truth else "fitted curves (no truth: oracle is the fitted optimum)",
            "feature_store_products": data.store_units,
        },
    )


# ---------------------------------------------------------------------------------------------- figures
def _season_figure(data: PricingData, runs: dict):
    import matplotlib.pyplot as plt

    cat = data.catalog
    oracle_price = runs["oracle"].price[0]
    # The product whose optimal price moves most over the season shows the dynamics best.
    p = int(np.argmax(oracle_price.std(axis=0) + 1e-9 * runs["oracle"].reward[0].sum(axis=0)))
    days = data.holdout_days
    base = cat.base_price[p]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[2, 1])
    for name, style in (("oracle", "k-"), ("agent", "C0-"), ("myopic", "C2--"), ("static", "C3:")):
        ax.step(days, runs[name].price[0, :, p] / base, style, where="post", label=name)
    ax.axhline(cat.floor[p] / base, color="grey", lw=0.8, ls="--")
    ax.axhline(cat.ceiling[p] / base, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="price / base price",
           title=f"{cat.product_ids[p]}: price over the holdout season (seed 0; dashed grey: guardrails)")
    ax.legend(ncol=4, fontsize=8)
    for name, style in (("oracle", "k-"), ("agent", "C0-")):
        ax2.step(days, runs[name].inventory[0, :, p], style, where="post", label=f"{name} stock")
    ax2.set(ylabel="units on hand", xlabel="day")
    ax2.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _training_figure(model):
    import matplotlib.pyplot as plt

    hist = getattr(model, "history", {}) or {}
    reward = np.asarray(hist.get("step_reward", []), dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4))
    if reward.size:
        window = max(1, min(50, reward.size // 10))
        smooth = np.convolve(reward, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, reward.size + 1), smooth, color="C0", label=f"training reward ({window}-step mean)")
    ax.set(xlabel="simulator step", ylabel="reward per product-day (x typical revenue)", title="DQN training")
    if hist.get("val_steps"):
        ax2 = ax.twinx()
        ax2.plot(hist["val_steps"], hist["val_profit"], "o-", color="C1", label="validation expected profit")
        ax2.set_ylabel("validation profit")
        ax2.legend(loc="lower right", fontsize=8)
        best = model.training_summary.get("best_step")
        if best is not None:
            ax.axvline(best, color="grey", ls=":", lw=1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _elasticity_figure(data: PricingData, runs: dict):
    import matplotlib.pyplot as plt

    cat = data.catalog
    fig, ax = plt.subplots(figsize=(6, 5))
    agent = (runs["agent"].price / cat.base_price).mean(axis=(0, 1))
    oracle = (runs["oracle"].price / cat.base_price).mean(axis=(0, 1))
    ax.scatter(data.est_curves.elasticity, agent, s=18, label="agent (vs fitted elasticity)")
    label = "oracle (vs true elasticity)" if data.truth else "fitted optimum (vs fitted elasticity)"
    ax.scatter(data.sim_curves.elasticity, oracle, s=18, marker="x", color="k", label=label)
    ax.set(xlabel="price elasticity", ylabel="mean price / base price over the holdout",
           title="More elastic products get lower prices")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _ope_figure(metrics: dict):
    import matplotlib.pyplot as plt

    names = ["logging (observed)", "IPS", "SNIPS", "DM", "DR", "simulated"]
    keys = ["ope_logging_value", "ope_ips", "ope_snips", "ope_dm", "ope_dr", "ope_sim_value"]
    values = [metrics.get(k, np.nan) for k in keys]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, values, color=["grey", "C0", "C0", "C2", "C1", "k"])
    ax.set(ylabel="profit per product-day",
           title=f"Off-policy value of the agent (logged holdout; match rate {metrics.get('ope_match_rate', 0):.1%})")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- MLflow
def log_model(model, data: PricingData):
    """Log the policy with ``mlflow.pytorch`` (signature: state features -> Q-value per level)."""
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.rl.demand import day_numbers

    model = model.cpu()
    lg = data.logged.head(5)
    if lg.empty:
        rows = np.arange(min(5, data.catalog.n_products))
        day = np.repeat(day_numbers(data.calendar[-1:]), len(rows))
        last = data.catalog.prices[rows, data.catalog.reference_level]
    else:
        rows, day, last = lg["row"].to_numpy(np.int64), lg["day"].to_numpy(np.int64), lg["last_price"].to_numpy()
    example = model.features(rows, day, data.catalog.order_up_to[rows], last)
    signature = infer_signature(example, model.q_values(example))
    # Pickle, not the default pt2 export: the logged object must keep price(), the catalogue and the fitted curves.
    return mlflow.pytorch.log_model(model, name="model", signature=signature, input_example=example,
                                    serialization_format="pickle")


def load_model(uri: str):
    """The logged :class:`~pipelines.rl.agents.PricingPolicy`, on CPU, ready for ``price`` and :func:`score`."""
    import mlflow

    return mlflow.pytorch.load_model(uri, map_location="cpu")


# ------------------------------------------------------------------------------------------------ serving


class PriceRequest(ApiModel):
    product_id: str = Field(min_length=1, max_length=64)
    date: dt.date | None = Field(None, description="Day to price (default: today, UTC).")
    inventory: float | None = Field(None, ge=0, le=1e7, description="Units on hand (default: order-up-to level).")
    last_price: float | None = Field(None, gt=0, le=1e7, description="Yesterday's price (default: base price).")


class PriceResponse(ServedResponse):
    product_id: str
    price: float
    floor: float
    ceiling: float
    max_daily_change: float


def serve_predict(policy, request: PriceRequest) -> dict:
    """Guardrailed price; the guardrails are enforced again here whatever the policy returns."""
    from pipelines.serving import NotFound

    if request.product_id not in policy.index:
        raise NotFound("product_id", f"unknown product {request.product_id!r} (not in the model's catalogue)")
    context = {k: v for k, v in {"date": request.date and str(request.date), "inventory": request.inventory,
                                 "last_price": request.last_price}.items() if v is not None}
    rails = policy.guardrails(request.product_id)
    # Whole cents, rounded inwards so the rounded price never leaves [floor, ceiling].
    lo, hi = math.ceil(rails["floor"] * 100 - 1e-9) / 100, math.floor(rails["ceiling"] * 100 + 1e-9) / 100
    price = min(max(round(policy.price(request.product_id, context), 2), lo), hi)
    return {"product_id": request.product_id, "price": float(price), **rails}


SERVING = ServingSpec(
    request=PriceRequest, response=PriceResponse, load=lambda settings, uri: load_model(uri),
    predict=serve_predict, unit_id=lambda r: r.product_id,
    example=lambda s: {"product_id": batch_values(s, "products", "product_id", 1)[0], "inventory": 10},
    unknown={"product_id": "P_DOES_NOT_EXIST"},
    summary="Today's (or a given day's) price of a product within its floor, ceiling and daily-change limit.",
)

def data_check(tables) -> list[str]:
    """Column-level needs of a bring-your-own batch: margins need base price and cost; decisions are daily."""
    from pipelines.data.kinds import sales_frequency

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


SPEC = ModelSpec(
    name="pricing",
    params=PricingParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="profit_ratio_to_oracle",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="DQN dynamic pricing within guardrails, trained in an inventory-aware demand simulator.",
    serving=SERVING,
    data=FamilyData(("products", "daily_sales"), kind="a daily price/units history plus products with "
                    "`base_price` and `cost`",
                    note="needs daily rows and `base_price` and `cost` for every product it prices",
                    check=data_check),
)
