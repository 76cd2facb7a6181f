"""Forecast accuracy over a rolling-origin backtest.

Shapes: ``actual`` is ``(origins, series, horizon)``; a point forecast has the same shape; quantile forecasts add
a last axis of the quantile levels; ``scale`` is ``(origins, series)``. Every metric is computed per origin and
then averaged over origins, except MASE: per series first (the holdout's unit, which the gate resamples), then
over series.
"""

from __future__ import annotations

import warnings

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)


def mase_scale(units: np.ndarray, origin: int, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal-naive forecast on ``units[:, :origin]``, per series (the MASE denominator).

    A series whose history is constant has scale 0 and is returned as NaN so that MASE ignores it.
    """
    hist = units[:, :origin].astype(np.float64)
    diffs = np.abs(hist[:, season:] - hist[:, :-season])
    scale = diffs.mean(axis=1)
    return np.where(scale > 0, scale, np.nan)


def scaled_errors(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``|error| / scale`` with the shape of ``actual``."""
    return np.abs(point - actual) / scale[..., None]


def series_mase(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """MASE of each series ``(series,)``: mean over origins of (MAE over the horizon / its scale at the origin);
    NaN for a series flat before every origin."""
    per_origin = scaled_errors(point, actual, scale).mean(axis=-1)  # (origins, series)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: flat series, NaN is the answer
        return np.nanmean(per_origin, axis=0)


def mean_mase(per_series: np.ndarray) -> float:
    """The primary metric: mean MASE over the series where it is defined (NaN when none is; ``inf`` stays, for a
    model that cannot forecast the data)."""
    per_series = np.asarray(per_series, dtype=np.float64)
    defined = per_series[~np.isnan(per_series)]
    return float(defined.mean()) if len(defined) else float("nan")


def mase(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float:
    """Mean over series of each series' MASE (:func:`series_mase`), so a series counts once whatever its origins."""
    return mean_mase(series_mase(point, actual, scale))


def wape(point: np.ndarray, actual: np.ndarray) -> float:
    """Mean over origins of sum |error| / sum |actual| (pooled over series and horizon)."""
    num = np.abs(point - actual).sum(axis=(-2, -1))
    den = np.maximum(np.abs(actual).sum(axis=(-2, -1)), 1e-9)
    return float(np.mean(num / den))


def pinball(quantiles: np.ndarray, actual: np.ndarray, levels=QUANTILES) -> np.ndarray:
    """Pinball loss of each quantile forecast, shape of ``quantiles``."""
    q = np.asarray(levels, dtype=np.float64)
    diff = actual[..., None] - quantiles
    return np.maximum(q * diff, (q - 1) * diff)


def quantile_loss(quantiles: np.ndarray, actual: np.ndarray, levels=QUANTILES) -> float:
    """Weighted quantile loss: mean over levels of ``2 * sum pinball / sum |actual|``, averaged over origins.

    For a point forecast repeated at every level this equals its WAPE, so the two are on one scale.
    """
    num = 2 * pinball(quantiles, actual, levels).sum(axis=(-3, -2))  # (origins, levels)
    den = np.maximum(np.abs(actual).sum(axis=(-2, -1)), 1e-9)[:, None]
    return float(np.mean(num / den))


def coverage(quantiles: np.ndarray, actual: np.ndarray, lo: int = 0, hi: int = -1) -> float:
    """Share of actuals inside ``[quantiles[..., lo], quantiles[..., hi]]`` (0.8 is nominal for P10-P90)."""
    inside = (actual >= quantiles[..., lo]) & (actual <= quantiles[..., hi])
    return float(inside.mean())


def error_by_horizon(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scaled absolute error per horizon step (mean over origins and series), shape ``(horizon,)``."""
    return np.nanmean(scaled_errors(point, actual, scale), axis=(0, 1))
