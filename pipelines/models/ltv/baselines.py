"""The LTV candidates besides the model: the classic BG/NBD + Gamma-Gamma, last period's spend carried forward, and
XGBoost on the Feast features alone (the ablation of the prior, held to the same calibrated total). Each is an :class:`~pipelines.models.ltv.regressor.LTVRegressor` of its own
``kind``, so whichever wins the selection is logged, loaded and served like the model."""

from __future__ import annotations

from pipelines.models.ltv.params import LTVParams
from pipelines.models.ltv.regressor import LTVRegressor

BASELINES = {"bgnbd_gamma_gamma": "btyd", "last_period_spend": "last_period", "xgboost_feast_only": "feast_only"}
"""Baseline name -> ``LTVRegressor`` kind. Listed before the model: a tie on validation keeps the simpler one."""
CANDIDATES = {**BASELINES, "model": "hybrid"}


def candidate(name: str, params: LTVParams, total_scale: float = 1.0) -> LTVRegressor:
    """An unfitted candidate (``"model"`` or a baseline name) with the family's parameters; ``total_scale`` only
    matters to the candidates with trees."""
    from pipelines.utils import pick_device

    return LTVRegressor(
        kind=CANDIDATES[name], horizon_days=params.horizon_days, point="mae" if params.point == "auto" else params.point,
        total_scale=total_scale,
        btyd_penalizer=params.btyd_penalizer, n_estimators=params.n_estimators, max_depth=params.max_depth,
        learning_rate=params.learning_rate, subsample=params.subsample, colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight, tweedie_variance_power=params.tweedie_variance_power,
        random_state=params.seed, n_jobs=1, device=pick_device(),
    )
