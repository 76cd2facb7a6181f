"""Hyper-parameters of the churn family."""

from __future__ import annotations

from pydantic import Field

from pipelines.spec import ModelParams


class ChurnParams(ModelParams):
    """Hyper-parameters of the churn model (override with ``--set key=value``)."""

    horizon_days: int = Field(56, ge=7, le=365, description="Label window after the cutoff, in days.")
    n_train_cutoffs: int = Field(4, ge=1, le=52)
    cutoff_spacing_days: int = Field(28, ge=7, description="Days between training cutoffs (multiple of 7).")
    n_estimators: int = Field(1000, ge=1, le=5000, description="Most trees (early stopping picks fewer).")
    max_depth: int = Field(4, ge=1, le=16)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    holdout_fraction: float = Field(0.25, gt=0, lt=1, description=(
        "Share of customers held out (stratified) when the customers table carries a `churned` label."))
    validation_fraction: float = Field(0.25, gt=0, lt=1, description=(
        "Share of the training customers (stratified) that picks the candidate and the number of trees, when "
        "there is a single training cutoff or labels are provided; otherwise the last training cutoff does."))
    early_stopping_rounds: int = Field(50, ge=1, description=(
        "Stop adding trees when validation AUC has not improved for this many rounds (at most n_estimators); "
        "the winner is refit on the whole training part with the chosen number."))
    use_attributes: bool = Field(True, description="Use the customer attribute columns as features.")
