"""Hyper-parameters of the pricing family."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipelines.spec import ModelParams


class PricingParams(ModelParams):
    """Hyper-parameters of the pricing family (override with ``--set key=value``)."""

    eval_days: int = Field(91, ge=14, le=365, description="Holdout days (evaluation episode; validation just before).")
    episode_days: int = Field(28, ge=7, le=182, description="Length of a training episode, in days.")
    eval_seeds: int = Field(5, ge=1, le=100, description="Holdout (and validation) episodes per policy.")
    n_levels: int = Field(11, ge=2, le=41, description="Number of price levels.")
    min_multiplier: float = Field(0.7, gt=0, le=1, description="Lowest level, as a multiple of the base price.")
    max_multiplier: float = Field(1.3, ge=1, le=5, description="Highest level, as a multiple of the base price.")
    min_margin: float = Field(0.10, ge=0, lt=1, description="Guardrail: floor = cost / (1 - min_margin).")
    max_price_ratio: float = Field(1.25, gt=0, le=10, description="Guardrail: ceiling = max_price_ratio * base.")
    max_daily_change: float = Field(0.10, gt=0, le=1, description="Guardrail: largest relative change per day.")
    restock_every_days: int = Field(7, ge=1, le=90)
    restock_cover: float = Field(1.0, gt=0, le=10, description="Order-up-to level in cycles of recent sales.")
    holding_cost_rate: float = Field(0.005, ge=0, le=1, description="Holding cost per unit-day, share of cost.")
    elasticity_prior: float = Field(2.0, ge=0, description="Shrinkage of fitted elasticities to their mean.")
    train_steps: int = Field(1500, ge=0, le=200_000, description="Simulator steps (all parallel episodes).")
    parallel_episodes: int = Field(256, ge=1, le=100_000)
    batch_size: int = Field(256, ge=8, le=65_536)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    gamma: float = Field(0.9, ge=0, lt=1)
    hidden: int = Field(64, ge=4, le=4096)
    eps_start: float = Field(0.3, ge=0, le=1)
    eps_end: float = Field(0.05, ge=0, le=1)
    exploration_fraction: float = Field(0.5, gt=0, le=1)
    target_tau: float = Field(0.01, gt=0, le=1)
    val_every: int = Field(250, ge=1)
    max_train_seconds: float = Field(120.0, gt=0, description="Safety stop (breaks run-to-run reproducibility).")
    ope_max_weight: float = Field(50.0, gt=1, description="Clip of the off-policy importance weights.")

    @model_validator(mode="after")
    def _check(self) -> PricingParams:
        if self.max_multiplier <= self.min_multiplier:
            raise ValueError("max_multiplier must exceed min_multiplier")
        return self
