"""Demand curves of the pricing simulator: the generator's hidden truth, or a Poisson log-log fit of a price history.

Both are constant-elasticity curves ``mean units = scale * (price / base_price) ** elasticity * season(day)``, the
form the generator uses (see :func:`pipelines.data.generator.true_mean_demand`). The fitted season is a weekly
profile times a yearly harmonic, shared by every product; the true one is :func:`pipelines.data.generator.seasonality`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

YEAR_DAYS = 365.25
ELASTICITY_BOUNDS = (-6.0, -0.1)
"""Fitted elasticities are clipped here: a simulator whose demand rises with price (a confounded fit) is useless."""


def day_numbers(days) -> np.ndarray:
    """Whole days since 1970-01-01 (UTC) of each day (a DatetimeIndex, timestamps or day numbers)."""
    if isinstance(days, np.ndarray) and days.dtype.kind in "iu":
        return days.astype(np.int64, copy=False)
    days = pd.DatetimeIndex(days)
    if days.tz is not None:
        days = days.tz_convert("UTC").tz_localize(None)
    return days.to_numpy("datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def calendar_parts(day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weekday (Monday = 0) and day of year (1-based) of day numbers, with NumPy only (fast in loops)."""
    day = np.asarray(day, dtype=np.int64)
    dates = day.astype("datetime64[D]")
    year_start = dates.astype("datetime64[Y]").astype("datetime64[D]")
    return (day + 3) % 7, (dates - year_start).astype(np.int64) + 1


def _yearly_terms(doy: np.ndarray) -> np.ndarray:
    angle = 2 * np.pi * np.asarray(doy) / YEAR_DAYS
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


@dataclass
class DemandCurves:
    """Constant-elasticity demand of each product, with a multiplicative season shared by all products.

    Attributes:
        product_ids: Product ids, in catalogue order.
        base_price: Reference (list) price of each product; prices enter as ``price / base_price``.
        scale: Expected units per day at the base price on a day whose season factor is 1.
        elasticity: Price elasticity (negative).
        source: ``"truth"`` (the generator's curves) or ``"fitted"`` (estimated from a history).
        dow_log: Fitted log weekday effect, Monday first (``None`` for the truth).
        yearly: Fitted coefficients of ``cos`` and ``sin`` of the day of year (``None`` for the truth).
    """

    product_ids: np.ndarray
    base_price: np.ndarray
    scale: np.ndarray
    elasticity: np.ndarray
    source: str = "fitted"
    dow_log: np.ndarray | None = None
    yearly: np.ndarray | None = None

    def season(self, days) -> np.ndarray:
        """Multiplicative season factor of each day (a DatetimeIndex or an array of day numbers, any shape)."""
        day = day_numbers(days)
        if self.source == "truth":
            from pipelines.data.generator import seasonality

            flat = pd.DatetimeIndex(np.asarray(day).ravel().astype("datetime64[D]"), tz="UTC")
            return seasonality(flat).reshape(np.shape(day))
        dow, doy = calendar_parts(day)
        return np.exp(self.dow_log[dow] + _yearly_terms(doy) @ self.yearly)

    def mean(self, rows: np.ndarray, price: np.ndarray, season: np.ndarray) -> np.ndarray:
        """Expected units of products ``rows`` at ``price`` on days with season factor ``season`` (broadcasts)."""
        return self.scale[rows] * (price / self.base_price[rows]) ** self.elasticity[rows] * season

    def mean_season(self) -> float:
        """Season factor averaged over a whole year (for typical daily demand)."""
        days = pd.date_range("2024-01-01", periods=364, freq="D", tz="UTC")
        return float(self.season(days).mean())


def truth_curves(products: pd.DataFrame, products_truth: pd.DataFrame) -> DemandCurves:
    """The generator's true curves for the products of ``products`` (in its order).

    Raises:
        ValueError: if a product has no truth row.
    """
    truth = products_truth.set_index(products_truth["product_id"].astype(str))
    ids = products["product_id"].astype(str).to_numpy()
    missing = pd.Index(ids).difference(truth.index)
    if len(missing):
        raise ValueError(f"{len(missing)} products have no truth row, e.g. {list(missing[:3])}")
    truth = truth.loc[ids]
    return DemandCurves(
        product_ids=ids.astype(object),
        base_price=products["base_price"].to_numpy(dtype=float),
        scale=truth["base_demand"].to_numpy(dtype=float),
        elasticity=truth["elasticity"].to_numpy(dtype=float),
        source="truth",
    )


def fit_curves(sales: pd.DataFrame, products: pd.DataFrame, elasticity_prior: float = 2.0,
               max_iter: int = 50, tol: float = 1e-6) -> DemandCurves:
    """Fit per-product elasticity and scale plus a shared season to a daily price/units history.

    The model is a Poisson log-log regression, ``log E[units] = a_p + e_p log(price / base_price) + weekday_d +
    b1 cos(doy) + b2 sin(doy)``, the count-data form of the classic log-log regression with day-of-week dummies (it
    keeps the zero-unit days a log of units would drop). It is fitted by block Newton steps: the two parameters of
    every product at once (vectorised 2x2 solves), then the eight shared season parameters. Each ``e_p`` gets a
    Gaussian prior centred on the precision-weighted mean elasticity (strength ``elasticity_prior``, in Fisher
    information units: a product whose prices barely moved gets the mean rather than noise); each ``a_p`` a weak one
    on the pooled level, so a product with no sales keeps a finite, small demand.

    Args:
        sales: Rows ``product_id, date, price, units`` (missing days are unobserved, not zero sales).
        products: Rows ``product_id, base_price``: the catalogue, whose order the curves keep.
        elasticity_prior: Prior precision of each product's elasticity around the mean.
        max_iter: Maximum block iterations.
        tol: Stop when no parameter moves more than this.

    Returns:
        Fitted curves (``source="fitted"``), elasticities clipped to :data:`ELASTICITY_BOUNDS`.
    """
    ids = products["product_id"].astype(str).to_numpy()
    base = products["base_price"].to_numpy(dtype=float)
    index = pd.Index(ids)
    rows = index.get_indexer(sales["product_id"].astype(str))
    keep = (rows >= 0) & sales["units"].notna().to_numpy() & (sales["price"].to_numpy(dtype=float) > 0)
    j = rows[keep]
    y = sales["units"].to_numpy(dtype=float, na_value=np.nan)[keep]
    x = np.log(sales["price"].to_numpy(dtype=float)[keep] / base[j])
    days = pd.DatetimeIndex(pd.to_datetime(sales["date"], utc=True).to_numpy()[keep])
    n_products = len(ids)
    if y.size == 0:
        raise ValueError("no usable sales rows to fit demand curves on")
    # Shared design: weekday dummies (Monday is the reference) and the yearly harmonic.
    z = np.zeros((y.size, 8))
    dow, doy = calendar_parts(day_numbers(days))
    for d in range(1, 7):
        z[:, d - 1] = dow == d
    z[:, 6:] = _yearly_terms(doy)
    theta = np.zeros(8)

    n_obs = np.bincount(j, minlength=n_products).astype(float)
    units = np.bincount(j, weights=y, minlength=n_products)
    prior_a = float(np.log(y.mean() + 1e-3))
    lam_a = 0.1
    a = np.log((units + 0.5) / (n_obs + 1.0))
    e = np.full(n_products, -1.0)
    prior_e = -1.0
    for it in range(max_iter):
        off = z @ theta
        for _ in range(2):
            mu = np.exp(np.clip(a[j] + e[j] * x + off, -30, 30))
            r = y - mu
            ga = np.bincount(j, r, n_products) - lam_a * (a - prior_a)
            ge = np.bincount(j, r * x, n_products) - elasticity_prior * (e - prior_e)
            haa = np.bincount(j, mu, n_products) + lam_a
            hae = np.bincount(j, mu * x, n_products)
            info_e = np.bincount(j, mu * x * x, n_products)
            hee = info_e + elasticity_prior
            det = haa * hee - hae**2
            da = np.clip((hee * ga - hae * ge) / det, -2, 2)
            de = np.clip((haa * ge - hae * ga) / det, -2, 2)
            a, e = a + da, e + de
        mu = np.exp(np.clip(a[j] + e[j] * x + off, -30, 30))
        grad = z.T @ (y - mu) - theta
        hess = z.T @ (z * mu[:, None]) + np.eye(8)
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        # Empirical-Bayes centre: products with informative price variation dominate the mean.
        prior_e = float(np.sum(info_e * e) / max(np.sum(info_e), 1e-9))
        moved = max(np.abs(da).max(), np.abs(de).max(), np.abs(step).max())
        if moved < tol:
            break
    log.debug("demand fit: %d iterations, mean elasticity %.3f", it + 1, prior_e)
    dow_log = np.concatenate([[0.0], theta[:6]])
    clipped = np.clip(e, *ELASTICITY_BOUNDS)
    if np.any(clipped != e):
        log.warning("demand fit: %d of %d elasticities clipped to %s", int(np.sum(clipped != e)), n_products,
                    ELASTICITY_BOUNDS)
    return DemandCurves(product_ids=ids.astype(object), base_price=base, scale=np.exp(a), elasticity=clipped,
                        source="fitted", dow_log=dow_log, yearly=theta[6:].copy())


def holdout_wape(curves: DemandCurves, sales: pd.DataFrame) -> float:
    """Weighted absolute percentage error of the curves' expected units on ``sales`` (at the logged prices)."""
    rows = pd.Index(curves.product_ids).get_indexer(sales["product_id"].astype(str))
    ok = rows >= 0
    days = pd.DatetimeIndex(pd.to_datetime(sales["date"], utc=True)[ok])
    mu = curves.mean(rows[ok], sales["price"].to_numpy(dtype=float)[ok], curves.season(days))
    y = sales["units"].to_numpy(dtype=float)[ok]
    return float(np.abs(y - mu).sum() / max(y.sum(), 1e-9))
