"""Evaluation figures of the LTV family (matplotlib; the caller logs and closes them)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def gains(y: np.ndarray, predictions: dict[str, np.ndarray]):
    """Cumulative share of actual spend captured when customers are taken in order of each prediction."""
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype="float64")
    share = np.arange(1, len(y) + 1) / len(y)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(share, np.cumsum(np.sort(y)[::-1]) / y.sum(), "k--", lw=1, label="perfect ordering")
    for name, pred in predictions.items():
        order = np.argsort(-np.asarray(pred, dtype="float64"), kind="stable")
        ax.plot(share, np.cumsum(y[order]) / y.sum(), label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    ax.axvline(0.1, color="grey", lw=0.5)
    ax.set(xlabel="share of customers (highest predicted first)", ylabel="share of actual future spend",
           title="Gains (holdout)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def decile_calibration(y: np.ndarray, predictions: dict[str, np.ndarray]):
    """Mean predicted vs mean actual spend in each decile of each prediction."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, pred in predictions.items():
        frame = pd.DataFrame({"y": y, "p": pred})
        frame["decile"] = pd.qcut(frame["p"].rank(method="first"), 10, labels=False)
        means = frame.groupby("decile")[["p", "y"]].mean()
        ax.plot(means["p"], means["y"], marker="o", label=name)
        top = max(top, float(means.to_numpy().max()))
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set(xlabel="mean predicted spend", ylabel="mean actual spend", title="Calibration by decile (holdout)")
    ax.legend(fontsize=8)
    return fig


def predicted_vs_actual(y: np.ndarray, model: np.ndarray, btyd: np.ndarray):
    """Scatter of predicted against actual spend (log1p axes) for the model and the BG/NBD baseline."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    top = np.log1p(max(float(np.max(y)), float(np.max(model)), float(np.max(btyd))))
    for ax, (name, pred) in zip(axes, (("LTV model", model), ("BG/NBD + Gamma-Gamma", btyd)), strict=True):
        ax.scatter(np.log1p(pred), np.log1p(y), s=6, alpha=0.4)
        ax.plot([0, top], [0, top], "k:", lw=1)
        ax.set(xlabel="log(1 + predicted spend)", title=name)
    axes[0].set_ylabel("log(1 + actual spend)")
    fig.tight_layout()
    return fig


def bgnbd_holdout(btyd: pd.DataFrame, future_purchases: pd.Series):
    """The classic BG/NBD check: mean actual vs expected purchases in the horizon by past repeat purchases."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({
        "frequency": np.minimum(btyd["btyd_frequency"].to_numpy(), 10),
        "expected": btyd["bgnbd_purchases"].to_numpy(),
        "actual": np.asarray(future_purchases, dtype="float64"),
    })
    means = frame.groupby("frequency")[["actual", "expected"]].mean()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(means.index, means["actual"], marker="o", label="actual")
    ax.plot(means.index, means["expected"], marker="s", label="BG/NBD expected")
    ax.set(xlabel="repeat purchases before the cutoff (10 = 10+)", ylabel="purchases in the horizon (mean)",
           title="BG/NBD: calibration vs holdout purchases")
    ax.legend()
    return fig


def importance(gain: pd.Series):
    """Horizontal bar chart of the trees' total gain per feature."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.35 * len(gain) + 1))
    gain.sort_values().plot.barh(ax=ax)
    ax.set(xlabel="total gain", title="Feature importance (trees on the BG/NBD prior)")
    fig.tight_layout()
    return fig


def learning_curve(curves: dict[str, list[float]]):
    """MAE per boosting round."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(values, label=name)
    ax.set(xlabel="boosting round", ylabel="MAE", title="Learning curve")
    ax.legend()
    return fig
