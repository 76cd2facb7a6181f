"""Figures of a pricing evaluation."""

from __future__ import annotations

import numpy as np

from pipelines.models.pricing.data import PricingData


def season_policy(data: PricingData, runs: dict):
    import matplotlib.pyplot as plt

    cat = data.catalog
    oracle_price = runs["oracle"].price[0]
    # The product whose optimal price moves most over the season shows the dynamics best.
    p = int(np.argmax(oracle_price.std(axis=0) + 1e-9 * runs["oracle"].reward[0].sum(axis=0)))
    days = data.holdout_days
    base = cat.base_price[p]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[2, 1])
    for name, style in (("oracle", "k-"), ("model", "C0-"), ("myopic_fitted", "C2--"), ("static_price", "C3:")):
        ax.step(days, runs[name].price[0, :, p] / base, style, where="post", label=name)
    ax.axhline(cat.floor[p] / base, color="grey", lw=0.8, ls="--")
    ax.axhline(cat.ceiling[p] / base, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="price / base price",
           title=f"{cat.product_ids[p]}: price over the holdout season (seed 0; dashed grey: guardrails)")
    ax.legend(ncol=4, fontsize=8)
    for name, style in (("oracle", "k-"), ("model", "C0-")):
        ax2.step(days, runs[name].inventory[0, :, p], style, where="post", label=f"{name} stock")
    ax2.set(ylabel="units on hand", xlabel="day")
    ax2.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def training_reward(model):
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


def price_vs_elasticity(data: PricingData, runs: dict):
    import matplotlib.pyplot as plt

    cat = data.catalog
    fig, ax = plt.subplots(figsize=(6, 5))
    agent = (runs["model"].price / cat.base_price).mean(axis=(0, 1))
    oracle = (runs["oracle"].price / cat.base_price).mean(axis=(0, 1))
    ax.scatter(data.est_curves.elasticity, agent, s=18, label="registered policy (vs fitted elasticity)")
    label = "oracle (vs true elasticity)" if data.truth else "fitted optimum (vs fitted elasticity)"
    ax.scatter(data.score_curves.elasticity, oracle, s=18, marker="x", color="k", label=label)
    ax.set(xlabel="price elasticity", ylabel="mean price / base price over the holdout",
           title="More elastic products get lower prices")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def off_policy(metrics: dict):
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
