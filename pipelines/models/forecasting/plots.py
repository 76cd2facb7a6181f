"""Figures of a forecasting backtest."""

from __future__ import annotations

import numpy as np

from pipelines.models.forecasting.data import ForecastData
from pipelines.models.forecasting.metrics import QUANTILES


def forecasts(data: ForecastData, q: np.ndarray, naive: np.ndarray, oracle: np.ndarray | None):
    """Actuals vs P50 with the P10-P90 band over the whole backtest, for four products from busy to quiet."""
    import matplotlib.pyplot as plt

    panel, h = data.panel, data.horizon
    volume = panel.units[:, :data.train_end].sum(axis=1)
    order = np.argsort(-volume, kind="stable")
    picks = list(dict.fromkeys(order[np.linspace(0, len(order) - 1, min(4, len(order))).round().astype(int)]))
    span = np.concatenate([np.arange(o, o + h) for o in data.origins])
    history = np.arange(max(0, data.origins[0] - 2 * h), data.origins[0])
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.6 * len(picks)), sharex=True, squeeze=False)
    for ax, i in zip(axes[:, 0], picks):
        ax.plot(panel.dates[history], panel.units[i, history], color="0.5", lw=1, label="history")
        ax.plot(panel.dates[span], panel.units[i, span], color="k", lw=1, label="actual")
        ax.fill_between(panel.dates[span], q[:, i, :, 0].ravel(), q[:, i, :, 2].ravel(), color="C0", alpha=0.25,
                        label="P10-P90")
        ax.plot(panel.dates[span], q[:, i, :, 1].ravel(), color="C0", lw=1.5, label="P50")
        ax.plot(panel.dates[span], naive[:, i, :].ravel(), color="C1", lw=1, ls=":", label="seasonal naive")
        if oracle is not None:
            ax.plot(panel.dates[span], oracle[:, i, :].ravel(), color="C2", lw=1, ls="--", label="true mean")
        for o in data.origins:
            ax.axvline(panel.dates[o], color="0.7", lw=0.8, ls="--")
        ax.set_ylabel("units")
        ax.set_title(f"{panel.product_ids[i]} (rank {int(np.flatnonzero(order == i)[0]) + 1} by volume)",
                     fontsize=9)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axes[-1, 0].xaxis.set_major_locator(locator)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0, 0].legend(fontsize=7, ncol=6, loc="upper left")
    fig.suptitle("Backtest forecasts (dashed lines: forecast origins)")
    fig.tight_layout()
    return fig


def error_by_horizon(curves: dict[str, np.ndarray], freq: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, err in curves.items():
        ax.plot(np.arange(1, len(err) + 1), err, marker=".", label=name)
    ax.set(xlabel=f"horizon ({freq} steps ahead)", ylabel="|error| / seasonal-naive in-sample MAE",
           title="Scaled error by horizon (backtest mean)")
    ax.legend()
    fig.tight_layout()
    return fig


def calibration(q: np.ndarray, oracle_q: np.ndarray | None, y: np.ndarray):
    """Observed share of actuals below each forecast quantile vs its nominal level."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(QUANTILES, [(y <= q[..., k]).mean() for k in range(len(QUANTILES))], marker="o", label="model")
    if oracle_q is not None:
        ax.plot(QUANTILES, [(y <= oracle_q[..., k]).mean() for k in range(len(QUANTILES))], marker="s",
                label="oracle (Poisson, true mean)")
    ax.set(xlabel="nominal quantile", ylabel="share of actuals <= forecast", title="Quantile calibration")
    ax.legend()
    fig.tight_layout()
    return fig


def elasticity(implied: np.ndarray, true: np.ndarray | None):
    """Implied price elasticity per product (a 10 % price cut over the horizon), against the truth if known."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if true is None:
        ax.hist(implied, bins=20)
        ax.set(xlabel="implied elasticity", ylabel="products")
    else:
        lo, hi = min(implied.min(), true.min()) - 0.1, max(implied.max(), true.max()) + 0.1
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.scatter(true, implied, s=12)
        ax.set(xlabel="true elasticity (generator)", ylabel="implied by the model")
    ax.set_title("Price elasticity per product")
    fig.tight_layout()
    return fig


def losses(losses: list[float]):
    import matplotlib.pyplot as plt

    from pipelines.models.forecasting.net import LOSS_EVERY

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1) * LOSS_EVERY, losses, marker=".")
    ax.set(xlabel="gradient step", ylabel="pinball loss (scaled units)", title="Training loss")
    fig.tight_layout()
    return fig
