"""A statistical forecaster as an MLflow ``pyfunc`` model, for when a baseline wins the selection.

The logged model holds no fitted state: its metadata names the candidate, the seasonal period, the horizon and the
conformal shifts; ``predict`` refits the candidate on the sales history it is given and forecasts past its end.
ShopFlow's own loader (:func:`pipelines.models.forecasting.model.load_model`) reads the metadata alone.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd


class StatisticalForecaster(mlflow.pyfunc.PythonModel):
    """``predict(sales)``: P10/P50/P90 per product and future period from a table in the ``daily_sales`` schema."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = dict(meta)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from pipelines.models.forecasting.model import Forecaster, forecast, history_data
        from pipelines.models.forecasting.panel import build_panel, extend_dates

        panel = build_panel(model_input)
        data = history_data(panel, self.meta)
        h = int(self.meta["horizon"])
        q = forecast(Forecaster(net=None, meta=self.meta), data, origins=[panel.n_periods])[0]
        dates = extend_dates(panel.dates, panel.frequency, h)[-h:]
        return pd.DataFrame([{"product_id": pid, "date": d, "p10": a, "p50": b, "p90": c}
                             for i, pid in enumerate(panel.product_ids)
                             for d, (a, b, c) in zip(dates, q[i], strict=True)])
