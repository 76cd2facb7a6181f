"""Hyper-parameters of the forecasting family."""

from __future__ import annotations

from pydantic import Field

from pipelines.spec import ModelParams


class ForecastingParams(ModelParams):
    """Hyper-parameters of the forecasting model (override with ``--set key=value``).

    ``horizon`` and ``lags`` default by the inferred frequency (daily 28/56, weekly 8/26, monthly 6/12,
    quarterly 4/8 periods). The network's parameters (``hidden`` to ``threads``) only matter when the network is
    trained, i.e. when the history holds at least one training window before the validation backtest.
    """

    horizon: int | None = Field(None, ge=1, le=366, description="Forecast steps (default by frequency).")
    lags: int | None = Field(None, ge=2, le=730, description="Input window in steps (default by frequency).")
    n_origins: int = Field(3, ge=1, le=12, description="Origins of the holdout backtest, and of the validation "
                           "backtest before it that selects the candidate and calibrates the intervals.")
    origin_step: int | None = Field(None, ge=1, le=366, description="Periods between two backtest origins "
                                    "(default: horizon / n_origins, rounded up).")
    window_stride: int = Field(1, ge=1, le=28, description="Step between training window origins.")
    hidden: int = Field(64, ge=4, le=1024)
    embedding_dim: int = Field(8, ge=0, le=128, description="Product embedding size (0: no product identity).")
    dropout: float = Field(0.1, ge=0, lt=1)
    steps: int = Field(400, ge=1, le=100_000, description="Gradient steps (independent of the data size).")
    batch_size: int = Field(512, ge=8, le=65536)
    learning_rate: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(1e-5, ge=0)
    threads: int = Field(1, ge=1, le=64, description="Torch CPU threads for training (1 suits this small net).")
