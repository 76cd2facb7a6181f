"""The logged LTV model: gradient boosting on top of a BG/NBD + Gamma-Gamma prior.

:class:`LTVRegressor` fits a BG/NBD and a Gamma-Gamma model on the training rows' purchase summaries, then an
XGBoost Tweedie regressor (log link) whose starting margin is ``log`` of their expected spend: the trees learn a
multiplicative correction of the buy-till-you-die prediction from the Feast features, and where the features say
nothing new the prediction falls back to the prior. That matters here because every training cutoff lies at least
two horizons before the end of the data, so training customers are younger than the customers scored: trees cannot
extrapolate in age, the BG/NBD posterior can (see ``docs/models/ltv.md``).

The model needs the Feast features plus the four purchase-summary columns (:data:`SUMMARY_COLUMNS`, from the orders
with :func:`summary_features`). It is a scikit-learn estimator, logged with MLflow's ``sklearn`` flavor in the
``skops`` format (:data:`SKOPS_TRUSTED_TYPES`), so ``mlflow.sklearn.load_model`` gives back an object whose
``predict`` is the expected spend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin

from pipelines.clv.btyd import BetaGeo, GammaGamma, rfm_summary

SUMMARY_COLUMNS = ["btyd_frequency", "btyd_recency", "btyd_T", "btyd_monetary"]
"""Purchase summary at the cutoff (see :func:`pipelines.clv.btyd.rfm_summary`), the model's non-Feast inputs."""

BTYD_COLUMNS = ["bgnbd_purchases", "bgnbd_p_alive", "gg_purchase_value", "btyd_spend"]
"""Columns :class:`BTYDFeatures` adds: expected purchases over the horizon, P(alive), expected value per purchase
and their product, the BG/NBD + Gamma-Gamma expected spend."""

SKOPS_TRUSTED_TYPES = [
    "pipelines.clv.btyd.BetaGeo", "pipelines.clv.btyd.GammaGamma", "pipelines.clv.model.BTYDFeatures",
    "pipelines.clv.model.LTVRegressor", "xgboost.core.Booster", "xgboost.sklearn.XGBRegressor",
]
"""Every non-standard type inside a fitted :class:`LTVRegressor`: what ``skops`` may instantiate when loading it."""

AGE_CONFOUNDED = ("tenure_days", "frequency_365d", "monetary_365d")
"""Feast features that mostly measure how long a customer has been observed. Training customers are younger than
scored ones, and trees extrapolate flat beyond the training range, so the trees do not see these; the BG/NBD
summary (which normalises counts by the observation length) carries that information instead."""


def summary_features(orders: pd.DataFrame, cutoff: pd.Timestamp, customer_ids) -> pd.DataFrame:
    """:data:`SUMMARY_COLUMNS` for ``customer_ids`` (in order) from their orders at or before ``cutoff``.

    Customers without a purchase by ``cutoff`` get ``NaN`` (and a ``NaN`` prediction): LTV rows are customers who
    have bought at least once.
    """
    s = rfm_summary(orders, cutoff, customer_ids)
    return pd.DataFrame({
        "btyd_frequency": s["frequency"].to_numpy(),
        "btyd_recency": s["recency"].to_numpy(),
        "btyd_T": s["T"].to_numpy(),
        "btyd_monetary": s["monetary_value"].to_numpy(),
    })


class BTYDFeatures(TransformerMixin, BaseEstimator):
    """Adds BG/NBD + Gamma-Gamma predictions over ``horizon_days`` to a frame holding :data:`SUMMARY_COLUMNS`.

    Args:
        horizon_days: Prediction horizon in days.
        penalizer: L2 penalty on the log-parameters of both models (0 = plain maximum likelihood).

    Attributes:
        bgnbd_: Fitted :class:`~pipelines.clv.btyd.BetaGeo`.
        gamma_gamma_: Fitted :class:`~pipelines.clv.btyd.GammaGamma`.
    """

    def __init__(self, horizon_days: int = 180, penalizer: float = 0.0):
        self.horizon_days = horizon_days
        self.penalizer = penalizer

    def fit(self, X: pd.DataFrame, y=None) -> BTYDFeatures:
        """Fit both models on the rows' summaries (rows of several cutoffs pool into one likelihood)."""
        self.bgnbd_ = BetaGeo().fit(X["btyd_frequency"], X["btyd_recency"], X["btyd_T"], penalizer=self.penalizer)
        self.gamma_gamma_ = GammaGamma().fit(X["btyd_frequency"], X["btyd_monetary"], penalizer=self.penalizer)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        x, tx, T, m = (X[c].to_numpy(dtype="float64") for c in SUMMARY_COLUMNS)
        out = X.copy()
        out["bgnbd_purchases"] = self.bgnbd_.expected_purchases(self.horizon_days, x, tx, T)
        out["bgnbd_p_alive"] = self.bgnbd_.p_alive(x, tx, T)
        out["gg_purchase_value"] = self.gamma_gamma_.expected_value(x, m)
        out["btyd_spend"] = out["bgnbd_purchases"] * out["gg_purchase_value"]
        return out

    @property
    def params_(self) -> dict[str, float]:
        """Fitted parameters, prefixed ``bgnbd_`` and ``gg_`` (for logging)."""
        return ({f"bgnbd_{k}": v for k, v in self.bgnbd_.params.items()}
                | {f"gg_{k}": v for k, v in self.gamma_gamma_.params.items()})


class LTVRegressor(RegressorMixin, BaseEstimator):
    """Expected spend over ``horizon_days``: ``btyd_spend * exp(trees(features))``, fitted with a Tweedie loss.

    Args:
        horizon_days: Prediction horizon in days (the label window the model is trained on).
        btyd_penalizer: L2 penalty of the BG/NBD and Gamma-Gamma fits.
        exclude: Input columns the trees do not see (default :data:`AGE_CONFOUNDED`).
        prior_floor: Smallest prior spend used as the starting margin (a customer the BG/NBD gives up on still
            starts from ``log(prior_floor)`` rather than ``-inf``).
        n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight,
        tweedie_variance_power: XGBoost hyper-parameters.
        random_state: Seed of XGBoost's row and column sampling.
        n_jobs: XGBoost threads (1: a few thousand rows gain nothing from more, and spinning OpenMP threads
            slow everything down on a shared machine).
        device: ``cpu`` or ``cuda`` (see ``pipelines.utils.pick_device``).

    Attributes:
        btyd_: The fitted :class:`BTYDFeatures` (the prior).
        booster_: The fitted ``xgboost.XGBRegressor``.
        feature_names_in_: Input columns, in the order ``predict`` reads them.
        tree_features_: Columns the trees split on.
    """

    def __init__(self, horizon_days: int = 180, btyd_penalizer: float = 0.0, exclude=AGE_CONFOUNDED,
                 prior_floor: float = 1.0, n_estimators: int = 150, max_depth: int = 3, learning_rate: float = 0.03,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 5.0,
                 tweedie_variance_power: float = 1.5, random_state: int = 42, n_jobs: int = 1,
                 device: str = "cpu"):
        self.horizon_days = horizon_days
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

    def _margin(self, Z: pd.DataFrame) -> np.ndarray:
        return np.log(np.maximum(Z["btyd_spend"].to_numpy(dtype="float64"), self.prior_floor))

    def _design(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        Z = self.btyd_.transform(X[list(self.feature_names_in_)].astype("float64"))
        return Z[self.tree_features_], self._margin(Z)

    def fit(self, X: pd.DataFrame, y, eval_set=None) -> LTVRegressor:
        """Fit the prior on the rows' purchase summaries, then the trees on top of it.

        Args:
            X: Feast features and :data:`SUMMARY_COLUMNS`.
            y: Spend in the horizon after each row's cutoff.
            eval_set: Optional ``[(X, y), ...]`` whose per-round MAE is recorded (learning curves only: it does not
                steer training).
        """
        import xgboost as xgb

        missing = [c for c in SUMMARY_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"LTVRegressor needs the purchase-summary columns {missing}")
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.btyd_ = BTYDFeatures(self.horizon_days, self.btyd_penalizer).fit(X)
        skip = set(SUMMARY_COLUMNS) | set(self.exclude or ())
        self.tree_features_ = [c for c in X.columns if c not in skip] + BTYD_COLUMNS
        design, margin = self._design(X)
        self.booster_ = xgb.XGBRegressor(
            objective="reg:tweedie", tweedie_variance_power=self.tweedie_variance_power,
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
            random_state=self.random_state, n_jobs=self.n_jobs, device=self.device, tree_method="hist",
            eval_metric="mae",
        )
        evals = [self._design(Xe) + (ye,) for Xe, ye in (eval_set or [])]
        self.booster_.fit(design, np.asarray(y, dtype="float64"), base_margin=margin,
                          eval_set=[(d, ye) for d, _, ye in evals] or None,
                          base_margin_eval_set=[m for _, m, _ in evals] or None, verbose=False)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon (positive; ``NaN`` for rows without a purchase summary)."""
        design, margin = self._design(X)
        return self.booster_.predict(design, base_margin=margin).astype("float64")

    def prior(self, X: pd.DataFrame) -> np.ndarray:
        """The BG/NBD + Gamma-Gamma expected spend alone (the model before the trees' correction)."""
        return self.btyd_.transform(X[list(self.feature_names_in_)].astype("float64"))["btyd_spend"].to_numpy()

    def feature_importance(self) -> pd.Series:
        """Total gain of each tree feature (0 for features never split on)."""
        gain = self.booster_.get_booster().get_score(importance_type="total_gain")
        return pd.Series(gain, dtype="float64").reindex(self.tree_features_).fillna(0.0)


def btyd_spend(orders: pd.DataFrame, cutoff: pd.Timestamp, customer_ids, horizon_days: int,
               penalizer: float = 0.0) -> tuple[pd.DataFrame, BTYDFeatures]:
    """The BG/NBD + Gamma-Gamma baseline: both models fitted on every customer's history at ``cutoff``.

    That is how the models are used on their own: calibrate on all purchases up to now, predict the next
    ``horizon_days``. No label is involved, so fitting at the evaluation cutoff leaks nothing.

    Returns:
        :data:`SUMMARY_COLUMNS` and :data:`BTYD_COLUMNS` for ``customer_ids`` (in order), and the fitted models.
    """
    frame = summary_features(orders, cutoff, customer_ids)
    model = BTYDFeatures(horizon_days, penalizer).fit(frame)
    return model.transform(frame), model
