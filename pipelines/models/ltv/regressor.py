"""The logged LTV model: a BG/NBD + Gamma-Gamma prior, an XGBoost Tweedie correction, calibrated totals.

:class:`LTVRegressor` is one scikit-learn estimator for every LTV candidate (``kind``):

- ``hybrid`` (the family's model): the trees (XGBoost, Tweedie loss, log link, starting from ``log btyd_spend``)
  learn a multiplicative correction of the buy-till-you-die prior from the Feast features, on labelled windows;
  they decide *who* gets how much. The *level* comes from the prior, which extrapolates in customer age and in
  horizon where trees cannot: over the customers it is applied to, the expected spend adds up to the BG/NBD +
  Gamma-Gamma total times ``k`` (``total_scale``), the ratio of actual to BG/NBD-predicted total on the validation
  window (the prior's own drift from one window to the next). The served number is a *point forecast*:
  the ``tau``-quantile of each customer's predictive spend (``P(no purchase)`` from the BG/NBD, a Gamma amount
  with the mean above), with one ``tau`` for every customer, chosen so that the point forecasts add up to the
  expected total. That is what minimises the summed absolute error under the constraint that the totals stay
  calibrated (the Lagrange condition of ``min sum E|Y_i - p_i|`` s.t. ``sum p_i = sum mu_i`` is
  ``F_i(p_i) = tau`` for all ``i``): a mean forecast wastes MAE on customers who will most likely not buy, a
  median forecast (what MAE alone rewards) predicts far too little in total.
- ``btyd``: the classic BG/NBD + Gamma-Gamma expected spend.
- ``last_period``: the spend of the previous ``horizon_days`` carried forward.
- ``feast_only``: the ablation: XGBoost Tweedie on the Feast features alone (no prior margin, no prior outputs),
  held to the same calibrated total and point forecasts as the hybrid.

The prior is unsupervised (it needs purchase histories, not labels), so it is always fitted *as of* the time it
predicts from: rows of the data set carry the prior columns (:data:`PRIOR_COLUMNS`) fitted on every purchase up to
their cutoff, and the model keeps its own prior fitted on every purchase up to the end of the data (``prior_``),
used for rows without those columns (serving). Trees never see horizon-dependent inputs, so a model trained on
short labelled windows predicts any horizon up to the data span through the prior's margin.

Logged with MLflow's ``sklearn`` flavor in the ``skops`` format (:data:`SKOPS_TRUSTED_TYPES`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin

from pipelines.models.ltv.btyd import BetaGeo, GammaGamma, rfm_summary

SUMMARY_COLUMNS = ["btyd_frequency", "btyd_recency", "btyd_T", "btyd_monetary", "recent_spend"]
"""Purchase summary at the cutoff (see :func:`pipelines.models.ltv.btyd.rfm_summary`) and the spend of the last
horizon before it: the model's non-Feast inputs."""

PRIOR_COLUMNS = ["bgnbd_purchases", "bgnbd_p_alive", "gg_purchase_value", "btyd_spend", "p_no_purchase"]
"""Columns :class:`BTYDFeatures` adds: expected purchases over the horizon, P(alive), expected value per purchase,
their product (the BG/NBD + Gamma-Gamma expected spend) and the probability of no purchase in the horizon."""

TREE_PRIOR = ["bgnbd_p_alive", "gg_purchase_value"]
"""Prior outputs the trees see: the ones that do not scale with the horizon."""

KINDS = ("hybrid", "btyd", "last_period", "feast_only")
LEARNED = ("hybrid", "feast_only")
"""Kinds with trees: held to the prior's calibrated total and served as point forecasts (``point="mae"``)."""

SKOPS_TRUSTED_TYPES = [
    "pipelines.models.ltv.btyd.BetaGeo", "pipelines.models.ltv.btyd.GammaGamma",
    "pipelines.models.ltv.regressor.BTYDFeatures", "pipelines.models.ltv.regressor.LTVRegressor",
    "xgboost.core.Booster", "xgboost.sklearn.XGBRegressor",
]
"""Every non-standard type inside a fitted :class:`LTVRegressor`: what ``skops`` may instantiate when loading it."""

AGE_CONFOUNDED = ("tenure_days", "frequency_365d", "monetary_365d")
"""Feast features that mostly measure how long a customer has been observed. Training customers are younger than
scored ones, and trees extrapolate flat beyond the training range, so the trees do not see these."""


def summary_features(orders: pd.DataFrame, cutoff: pd.Timestamp, customer_ids, recent_days: int) -> pd.DataFrame:
    """:data:`SUMMARY_COLUMNS` for ``customer_ids`` (in order) from their orders at or before ``cutoff``.

    ``recent_spend`` is the spend in ``(cutoff - recent_days, cutoff]``. Customers without a purchase by ``cutoff``
    get ``NaN`` (and a ``NaN`` prediction): LTV rows are customers who have bought at least once.
    """
    s = rfm_summary(orders, cutoff, customer_ids)
    ids = pd.Index(pd.Series(customer_ids).astype(str))
    inside = orders[(orders["order_ts"] > cutoff - pd.Timedelta(days=recent_days)) & (orders["order_ts"] <= cutoff)]
    recent = inside.groupby(inside["customer_id"].astype(str))["amount"].sum().reindex(ids, fill_value=0.0)
    return pd.DataFrame({
        "btyd_frequency": s["frequency"].to_numpy(),
        "btyd_recency": s["recency"].to_numpy(),
        "btyd_T": s["T"].to_numpy(),
        "btyd_monetary": s["monetary_value"].to_numpy(),
        "recent_spend": np.where(s["frequency"].isna(), np.nan, recent.to_numpy(dtype="float64")),
    })


class BTYDFeatures(TransformerMixin, BaseEstimator):
    """Adds BG/NBD + Gamma-Gamma predictions over ``horizon_days`` to a frame holding :data:`SUMMARY_COLUMNS`.

    Args:
        horizon_days: Prediction horizon in days.
        penalizer: L2 penalty on the log-parameters of both models (0 = plain maximum likelihood).
    """

    def __init__(self, horizon_days: int = 180, penalizer: float = 0.0):
        self.horizon_days = horizon_days
        self.penalizer = penalizer

    def fit(self, X: pd.DataFrame, y=None) -> BTYDFeatures:
        """Fit both models on the rows' summaries. Customers without a purchase, or whose first purchase is at the
        cutoff itself (date-only data: no time observed yet), say nothing about the rates and are left out."""
        X = X[X["btyd_frequency"].notna() & (X["btyd_T"] > 0)]
        self.bgnbd_ = BetaGeo().fit(X["btyd_frequency"], X["btyd_recency"], X["btyd_T"], penalizer=self.penalizer)
        self.gamma_gamma_ = GammaGamma().fit(X["btyd_frequency"], X["btyd_monetary"], penalizer=self.penalizer)
        return self

    def transform(self, X: pd.DataFrame, horizon_days: int | None = None) -> pd.DataFrame:
        t = float(horizon_days or self.horizon_days)
        x, tx, T, m = (X[c].to_numpy(dtype="float64") for c in SUMMARY_COLUMNS[:4])
        bg = self.bgnbd_
        out = X.copy()
        out["bgnbd_purchases"] = bg.expected_purchases(t, x, tx, T)
        alive = bg.p_alive(x, tx, T)
        out["bgnbd_p_alive"] = alive
        out["gg_purchase_value"] = self.gamma_gamma_.expected_value(x, m)
        out["btyd_spend"] = out["bgnbd_purchases"] * out["gg_purchase_value"]
        # Alive customers buy at lambda ~ Gamma(r + x, alpha + T): P(no purchase in t) = E[exp(-lambda t)].
        out["p_no_purchase"] = 1.0 - alive + alive * ((bg.alpha + T) / (bg.alpha + T + t)) ** (bg.r + x)
        return out

    @property
    def params_(self) -> dict[str, float]:
        """Fitted parameters, prefixed ``bgnbd_`` and ``gg_`` (for logging)."""
        return ({f"bgnbd_{k}": v for k, v in self.bgnbd_.params.items()}
                | {f"gg_{k}": v for k, v in self.gamma_gamma_.params.items()})


def point_forecast(mu: np.ndarray, p_zero: np.ndarray, kappa: float, tau: float) -> np.ndarray:
    """The ``tau``-quantile of a spend that is 0 with probability ``p_zero``, else Gamma(``kappa``) with mean
    ``mu / (1 - p_zero)`` (so the overall mean is ``mu``)."""
    from scipy.stats import gamma

    p0 = np.clip(np.asarray(p_zero, dtype="float64"), 0.0, 1.0 - 1e-6)
    mean_pos = np.asarray(mu, dtype="float64") / (1.0 - p0)
    level = np.clip((tau - p0) / (1.0 - p0), 0.0, 1.0 - 1e-9)
    out = gamma.ppf(level, kappa, scale=mean_pos / kappa)
    return np.where(tau <= p0, 0.0, out)


def solve_tau(mu: np.ndarray, p_zero: np.ndarray, kappa: float) -> float:
    """The common quantile level at which the point forecasts of these customers add up to their expected total."""
    ok = np.isfinite(mu) & np.isfinite(p_zero)
    mu, p_zero = mu[ok], p_zero[ok]
    target = mu.sum()
    if target <= 0 or not ok.any():
        return 0.5
    lo, hi = 0.0, 1.0 - 1e-6
    for _ in range(40):  # the total is increasing in tau
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if point_forecast(mu, p_zero, kappa, mid).sum() < target else (lo, mid)
    return (lo + hi) / 2


class LTVRegressor(RegressorMixin, BaseEstimator):
    """Spend over ``horizon_days`` of the LTV candidate ``kind`` (see the module docstring).

    Args:
        kind: ``hybrid``, ``btyd``, ``last_period`` or ``feast_only``.
        horizon_days: Horizon of the served predictions (rows carrying :data:`PRIOR_COLUMNS` use theirs).
        point: ``mae`` (kinds with trees): calibrated-total quantile point forecasts; ``mean``: expected spend.
        total_scale: ``k``, the multiplier of the expected spend learnt on the validation window.
        btyd_penalizer: L2 penalty of the BG/NBD and Gamma-Gamma fits.
        exclude: Input columns the trees do not see (default :data:`AGE_CONFOUNDED`).
        prior_floor: Smallest prior spend used as the starting margin.
        n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight,
        tweedie_variance_power: XGBoost hyper-parameters.
        random_state: Seed of XGBoost's row and column sampling.
        n_jobs: XGBoost threads.
        device: ``cpu`` or ``cuda``.

    Attributes:
        prior_: :class:`BTYDFeatures` fitted on the population at the end of the data (serving).
        booster_: The fitted ``xgboost.XGBRegressor`` (``hybrid`` and ``feast_only``).
        kappa_: Gamma shape of a buyer's spend around its mean (from the training labels).
        level_: ``(norm, tau)`` of the served predictions, set on the population at the end of the data: the
            multiplier that makes the trees' total the prior's total, and the quantile level of the point forecasts.
        feature_names_in_: Input columns, in the order ``predict`` reads them.
        tree_features_: Columns the trees split on.
    """

    def __init__(self, kind: str = "hybrid", horizon_days: int = 180, point: str = "mae", total_scale: float = 1.0,
                 btyd_penalizer: float = 0.0, exclude=AGE_CONFOUNDED, prior_floor: float = 1.0,
                 n_estimators: int = 150, max_depth: int = 3, learning_rate: float = 0.03, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 5.0, tweedie_variance_power: float = 1.5,
                 random_state: int = 42, n_jobs: int = 1, device: str = "cpu"):
        self.kind = kind
        self.horizon_days = horizon_days
        self.point = point
        self.total_scale = total_scale
        self.btyd_penalizer = btyd_penalizer
        self.exclude = exclude
        self.prior_floor = prior_floor
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.tweedie_variance_power = tweedie_variance_power
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.device = device

    # ------------------------------------------------------------------ inputs
    def _with_prior(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with :data:`PRIOR_COLUMNS`: its own (fitted as of its cutoff) or the model's end-of-data prior."""
        if set(PRIOR_COLUMNS) <= set(X.columns):
            return X
        return self.prior_.transform(X[list(self.feature_names_in_)].astype("float64"), self.horizon_days)

    def _trees(self, Z: pd.DataFrame) -> np.ndarray:
        design = Z[self.tree_features_].astype("float64")
        if self.kind == "feast_only":
            return self.booster_.predict(design).astype("float64")
        margin = np.log(np.maximum(Z["btyd_spend"].to_numpy(dtype="float64"), self.prior_floor))
        return self.booster_.predict(design, base_margin=margin).astype("float64")

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y, population: pd.DataFrame | None = None) -> LTVRegressor:
        """Fit the candidate on labelled rows, and its serving prior on the population at the end of the data.

        Args:
            X: Feast features, :data:`SUMMARY_COLUMNS` and the rows' own :data:`PRIOR_COLUMNS` (as of each cutoff,
                over the label window).
            y: Spend in the label window after each row's cutoff.
            population: Every customer's inputs at the end of the data (no labels): the prior the served model
                uses, and the quantile level of its point forecasts. Default: the prior is fitted on ``X``.
        """
        import xgboost as xgb

        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        missing = [c for c in SUMMARY_COLUMNS + PRIOR_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"LTVRegressor needs the columns {missing}")
        self.feature_names_in_ = np.asarray([c for c in X.columns if c not in PRIOR_COLUMNS], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        base = population if population is not None else X
        self.prior_ = BTYDFeatures(self.horizon_days, self.btyd_penalizer).fit(base)
        y = np.asarray(y, dtype="float64")
        skip = set(SUMMARY_COLUMNS) | set(self.exclude or ())
        feast = [c for c in self.feature_names_in_ if c not in skip]
        self.tree_features_ = feast if self.kind == "feast_only" else feast + TREE_PRIOR
        if self.kind in ("hybrid", "feast_only"):
            self.booster_ = xgb.XGBRegressor(
                objective="reg:tweedie", tweedie_variance_power=self.tweedie_variance_power,
                n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                subsample=self.subsample, colsample_bytree=self.colsample_bytree,
                min_child_weight=self.min_child_weight, random_state=self.random_state, n_jobs=self.n_jobs,
                device=self.device, tree_method="hist",
            )
            design = X[self.tree_features_].astype("float64")
            if self.kind == "hybrid":
                margin = np.log(np.maximum(X["btyd_spend"].to_numpy(dtype="float64"), self.prior_floor))
                self.booster_.fit(design, y, base_margin=margin, verbose=False)
            else:
                self.booster_.fit(design, y, verbose=False)
        self.kappa_ = 1.0
        self.level_ = (1.0, 0.5)
        if self.kind in LEARNED:
            self.kappa_ = self._dispersion(X, y)
            self.level_ = self.level(population if population is not None else X)
        return self

    def _dispersion(self, X: pd.DataFrame, y: np.ndarray) -> float:
        """Gamma shape of a buyer's spend around its predicted mean: ``mean(z)^2 / var(z)`` for ``z`` = spend /
        predicted spend given a purchase, over the training rows with a purchase."""
        if not self.uses_point:
            return 1.0
        mu = self.expected(X, self.level(X, point=False)[0])
        p0 = np.clip(X["p_no_purchase"].to_numpy(dtype="float64"), 0.0, 1.0 - 1e-3)
        buy = (y > 0) & np.isfinite(mu) & (mu > 0)
        z = y[buy] / (mu[buy] / (1.0 - p0[buy]))
        if z.size < 2 or z.var() <= 0:
            return 1.0
        return float(np.clip(z.mean() ** 2 / z.var(), 0.2, 50.0))

    # ------------------------------------------------------------------ predict
    @property
    def uses_point(self) -> bool:
        return self.kind in LEARNED and self.point == "mae"

    def level(self, X: pd.DataFrame, point: bool = True) -> tuple[float, float]:
        """``(norm, tau)`` for the customers of ``X`` (from their inputs only, never a label): ``norm`` makes the
        trees' expected total equal to ``total_scale`` times the prior's; ``tau`` is the quantile level at which
        the point forecasts add up to that total."""
        if self.kind not in LEARNED:
            return 1.0, 0.5
        Z = self._with_prior(X)
        raw = self._trees(Z)
        prior = Z["btyd_spend"].to_numpy(dtype="float64")
        ok = np.isfinite(raw) & np.isfinite(prior)
        norm = float(prior[ok].sum() / raw[ok].sum()) if ok.any() and raw[ok].sum() > 0 else 1.0
        if not (point and self.uses_point):
            return norm, 0.5
        tau = solve_tau(self.expected(Z, norm), Z["p_no_purchase"].to_numpy(dtype="float64"), self.kappa_)
        return norm, tau

    def expected(self, X: pd.DataFrame, norm: float | None = None) -> np.ndarray:
        """Expected spend over the horizon (``NaN`` for rows without a purchase summary); ``norm`` defaults to the
        one set on the population at the end of the data."""
        Z = self._with_prior(X)
        if self.kind == "btyd":
            return Z["btyd_spend"].to_numpy(dtype="float64")
        if self.kind == "last_period":
            return Z["recent_spend"].to_numpy(dtype="float64")
        return self.total_scale * (self.level_[0] if norm is None else norm) * self._trees(Z)

    def predict(self, X: pd.DataFrame, level: tuple[float, float] | None = None) -> np.ndarray:
        """The served spend over the horizon: point forecasts for the kinds with trees (``point="mean"``: their
        expected spend), the expected spend for the other kinds; ``NaN`` for rows without a purchase summary.

        Args:
            X: Inputs, with or without :data:`PRIOR_COLUMNS` (without: the model's end-of-data prior).
            level: ``(norm, tau)`` (see :meth:`level`); default the one set on the population at the end of the
                data, which is what serving uses. Scoring another population (a holdout cutoff) passes its own.
        """
        Z = self._with_prior(X)
        norm, tau = self.level_ if level is None else level
        mu = self.expected(Z, norm)
        if not self.uses_point:
            return mu
        out = point_forecast(mu, Z["p_no_purchase"].to_numpy(dtype="float64"), self.kappa_, tau)
        return np.where(np.isfinite(mu), out, np.nan)

    def prior(self, X: pd.DataFrame) -> np.ndarray:
        """The BG/NBD + Gamma-Gamma expected spend alone."""
        return self._with_prior(X)["btyd_spend"].to_numpy(dtype="float64")

    def feature_importance(self) -> pd.Series:
        """Total gain of each tree feature (0 for features never split on; empty without trees)."""
        if not hasattr(self, "booster_"):
            return pd.Series(dtype="float64")
        gain = self.booster_.get_booster().get_score(importance_type="total_gain")
        return pd.Series(gain, dtype="float64").reindex(self.tree_features_).fillna(0.0)
