"""Holdout evaluation of a pricing agent: profit against static, myopic and optimal pricing, guardrail checks and
off-policy estimates from the logged prices."""

from __future__ import annotations

import logging

import numpy as np

from pipelines.models.pricing.data import PricingData
from pipelines.models.pricing.params import PricingParams
from pipelines.spec import Evaluation

log = logging.getLogger(__name__)


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
    from pipelines.models.pricing import ope

    cat, est, sim, lg = data.catalog, data.est_curves, data.score_curves, data.logged
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
    """The registered candidate vs static, myopic and optimal pricing on the holdout episodes of the scoring
    simulator (the truth where it exists), per product-episode for the gate; off-policy estimates and plots."""
    from pipelines.models.pricing import plots
    from pipelines.models.pricing.baselines import RULES, RulePricing
    from pipelines.models.pricing.demand import holdout_wape
    from pipelines.models.pricing.scoring import profit_ratio, unit_frame

    cat = data.catalog
    if not data.truth:
        log.info("pricing: no generator truth for this batch; the holdout is scored in the fitted simulator and "
                 "profit_ratio_to_oracle is relative to its optimum (no oracle)")
    plan, oracle_runs = data.oracle()
    policies = {"model": model, **{rule: RulePricing(rule, cat, data.est_curves) for rule in RULES}}
    runs = {name: data.rollout(policy.as_policy()) for name, policy in policies.items()}
    runs["oracle"] = oracle_runs
    units = {name: unit_frame(runs[name], oracle_runs, cat.product_ids, data.eval_seeds) for name in policies}
    ratio = {name: profit_ratio(frame) for name, frame in units.items()}
    per_seed = {k: r.profit_per_seed() for k, r in runs.items()}
    total = {k: float(v.sum()) for k, v in per_seed.items()}
    n_seeds, cells = len(data.eval_seeds), cat.n_products * data.eval_days
    regret = (total["oracle"] - total["model"]) / n_seeds
    metrics = {
        "profit_ratio_to_oracle": ratio["model"],
        "profit_ratio_std": float(np.std(per_seed["model"] / per_seed["oracle"])),
        "regret": regret,
        "regret_per_product_day": regret / cells,
        "regret_share": 1.0 - ratio["model"],
        **{f"{k}_profit": total[k] / n_seeds for k in total},
        "oracle_expected_profit": float(plan.expected_profit.sum()),
        "uplift_vs_static": total["model"] / total["static_price"] - 1.0,
        "uplift_vs_myopic": total["model"] / total["myopic_fitted"] - 1.0,
        **{f"{k}_stockout_rate": float(runs[k].stockout.mean()) for k in ("model", "static_price", "oracle")},
        **{f"{k}_mean_price_ratio": float((runs[k].price / cat.base_price).mean()) for k in ("model", "oracle")},
        "guardrail_violations": float(_violations(data, runs["model"])),
        "demand_holdout_wape": holdout_wape(data.est_curves, data.holdout_sales),
        "n_products": float(cat.n_products),
        "holdout_days": float(data.eval_days),
        "eval_seeds": float(n_seeds),
        "train_best_step": float(model.training_summary.get("best_step", 0)),
        "train_transitions": float(model.training_summary.get("transitions", 0)),
        "train_seconds": float(model.training_summary.get("seconds", 0.0)),
        "train_stopped_early": float(model.training_summary.get("stopped_early", False)),  # max_train_seconds hit
    }
    if data.truth:
        metrics["elasticity_mae"] = float(np.mean(np.abs(data.est_curves.elasticity - data.score_curves.elasticity)))
        metrics["truth_holdout_wape"] = holdout_wape(data.score_curves, data.holdout_sales)
    metrics.update(_off_policy(model, data, params))

    figures = {
        "season_policy.png": plots.season_policy(data, runs),
        "training_reward.png": plots.training_reward(model),
        "price_vs_elasticity.png": plots.price_vs_elasticity(data, runs),
    }
    if "ope_dr" in metrics:
        figures["off_policy.png"] = plots.off_policy(metrics)
    candidate = getattr(model, "candidate", "model")
    return Evaluation(
        metrics=metrics,
        baselines={rule: ratio[rule] for rule in RULES},
        oracle=1.0 if data.truth else None,
        figures=figures,
        extra_params={
            "holdout_start": str(data.calendar[data.holdout_start].date()),
            "validation_start": str(data.calendar[data.val_start].date()),
            "trained_in": "fitted simulator (demand curves fitted on the training days)",
            "scored_in": ("generator truth (oracle = optimum of the true curves)" if data.truth else
                          "fitted simulator: no truth, so the holdout and its optimum use the fitted curves"),
            "feature_store_products": data.store_units,
        },
        units={rule: units[rule] for rule in RULES},
        candidate=candidate,
        selection=dict(getattr(model, "selection", {})),
    )
