"""Metrics of LTV predictions against the actual spend, per customer and in total."""

from __future__ import annotations

import numpy as np
import pandas as pd

PRIMARY_METRIC = "mae"


def mae(frame: pd.DataFrame) -> float:
    """The primary metric of a per-customer frame (columns ``y`` actual, ``p`` predicted) or any resample of it."""
    if frame.empty:
        return float("nan")
    return float(np.mean(np.abs(frame["p"].to_numpy(dtype="float64") - frame["y"].to_numpy(dtype="float64"))))


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, Spearman, top-decile capture and calibration ratio of ``pred`` against the actual spend ``y``.

    ``top_decile_capture`` is the share of the actual spend bought by the 10 % of customers ranked highest by
    ``pred`` (ties broken by row order); ``calibration_ratio`` is predicted total / actual total.
    """
    from scipy.stats import spearmanr

    y, pred = np.asarray(y, dtype="float64"), np.asarray(pred, dtype="float64")
    top = np.argsort(-pred, kind="stable")[: int(np.ceil(0.1 * len(y)))]
    total = y.sum()
    rho = spearmanr(pred, y).statistic if np.ptp(pred) > 0 and np.ptp(y) > 0 else 0.0  # undefined if constant
    return {
        "mae": float(np.mean(np.abs(pred - y))),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "spearman": float(rho),
        "top_decile_capture": float(y[top].sum() / total) if total > 0 else 0.0,
        "calibration_ratio": float(pred.sum() / total) if total > 0 else 0.0,
    }


def decile_calibration(y: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Predicted / actual total in each decile of ``expected`` (1 = lowest tenth of customers), keyed ``decile_01``
    ... ``decile_10``; a decile whose customers bought nothing has no ratio and is left out (metrics stay finite:
    run summaries travel as JSON)."""
    y, expected = np.asarray(y, dtype="float64"), np.asarray(expected, dtype="float64")
    order = np.argsort(expected, kind="stable")
    out = {}
    for d, rows in enumerate(np.array_split(order, 10), start=1):
        actual = y[rows].sum()
        if actual > 0:
            out[f"decile_{d:02d}"] = float(expected[rows].sum() / actual)
    return out
