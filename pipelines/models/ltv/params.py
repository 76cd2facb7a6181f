"""Hyper-parameters of the LTV family."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.spec import ModelParams


class LTVParams(ModelParams):
    """Hyper-parameters of the LTV model (override with ``--set key=value``)."""

    horizon_days: int = Field(
        180, ge=7, le=3650, description="Horizon of the served predictions, in days; at most the data's span.")
    n_train_cutoffs: int = Field(4, ge=1, le=52)
    cutoff_spacing_days: int = Field(28, ge=7, description="Days between training cutoffs (multiple of 7).")
    min_history_days: int = Field(
        28, ge=0, description="Days of orders required before the first training cutoff.")
    use_attributes: bool = Field(
        True, description="Customer attribute columns of the customers table (numeric, one-hot categorical) are "
                          "features of the trees.")
    point: Literal["auto", "mae", "mean"] = Field(
        "auto", description="Served number of the learned candidates: `mae` = calibrated-total quantile forecast, "
                            "`mean` = expected spend, `auto` = whichever has the lower MAE on the validation window.")
    calibrate_total: bool = Field(
        True, description="Scale the totals by the square root of actual / BG/NBD-predicted total on the validation "
                          "window (half the log drift: one window is a noisy estimate of it).")
    btyd_penalizer: float = Field(0.0, ge=0, description="L2 penalty of the BG/NBD and Gamma-Gamma fits.")
    n_estimators: int = Field(150, ge=1, le=5000)
    max_depth: int = Field(3, ge=1, le=16)
    learning_rate: float = Field(0.03, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    tweedie_variance_power: float = Field(1.5, ge=1.0, lt=2.0)
