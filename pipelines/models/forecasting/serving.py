"""Serving of the forecasting family: quantile forecasts of a product from the end of its training sales history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from pipelines.models.forecasting.data import ForecastData
from pipelines.models.forecasting.flavor import load_model
from pipelines.models.forecasting.model import NETWORK, Forecaster, forecast, history_data
from pipelines.models.forecasting.panel import build_panel, extend_dates
from pipelines.serving import batch_values
from pipelines.spec import ApiModel, ServedResponse, ServingSpec


class ForecastRequest(ApiModel):
    product_id: str = Field(min_length=1, max_length=64)
    horizon: int | None = Field(None, ge=1, le=366,
                                description="Periods ahead (default, and at most: the model's horizon).")
    price_plan: list[Annotated[float, Field(gt=0, le=1e7)]] | None = Field(
        None, max_length=366, description="Planned price per period (what-if); default: the last known price.")


class ForecastPoint(ApiModel):
    date: str
    p10: float = Field(ge=0)
    p50: float = Field(ge=0)
    p90: float = Field(ge=0)


class ForecastResponse(ServedResponse):
    product_id: str
    frequency: str
    forecast: list[ForecastPoint]


@dataclass
class ServedForecaster:
    """The registered forecaster plus the sales history it reads (the current batch's panel).

    ``ahead``: the forecasts past the end of the history of every product, computed once at load for a
    statistical forecaster (it refits on the whole history); ``None`` for the network, which forecasts per request
    (a price plan changes its answer).
    """

    model: Forecaster
    data: ForecastData
    index: dict[str, int]
    ahead: np.ndarray | None = None


def serve_load(settings, uri: str) -> ServedForecaster:
    from pipelines.serving import serving_context

    model = load_model(uri)
    panel = build_panel(serving_context(settings, uri).table("daily_sales"))  # its training batch's sales
    data = history_data(panel, model.meta)
    ahead = None if model.method == NETWORK else forecast(model, data, origins=[panel.n_periods])[0]
    return ServedForecaster(model, data, {p: i for i, p in enumerate(panel.product_ids)}, ahead)


def serve_predict(served: ServedForecaster, request: ForecastRequest) -> dict:
    """P10/P50/P90 units per period from the end of the history, optionally under a price plan."""
    from pipelines.serving import NotFound, RequestError

    horizon = int(served.model.meta["horizon"])
    steps = request.horizon or horizon
    if steps > horizon:
        raise RequestError("horizon", f"{steps} periods asked; this model forecasts at most {horizon}")
    row = served.index.get(request.product_id)
    if row is None:
        raise NotFound("product_id", f"unknown product {request.product_id!r} (no sales history)")
    if request.price_plan is not None and len(request.price_plan) > steps:
        raise RequestError("price_plan", f"{len(request.price_plan)} prices for a horizon of {steps}")
    if request.price_plan and served.ahead is not None:
        raise RequestError("price_plan", f"the served forecaster ({served.model.method}, selected on the "
                                         "validation backtest) does not read prices; omit price_plan")
    panel = served.data.panel
    if served.ahead is not None:
        q = served.ahead[row, :steps]
    else:
        price = None
        if request.price_plan:
            plan = np.repeat(panel.price[:, -1:], horizon, axis=1)
            plan[row, :len(request.price_plan)] = request.price_plan
            plan[row, len(request.price_plan):] = request.price_plan[-1]
            price = np.concatenate([panel.price, plan], axis=1)
        q = forecast(served.model, served.data, origins=[panel.n_periods], price=price)[0, row, :steps]
    dates = extend_dates(panel.dates, panel.frequency, steps)[-steps:]
    return {"product_id": request.product_id, "frequency": panel.frequency.name,
            "forecast": [{"date": str(d.date()), "p10": float(a), "p50": float(b), "p90": float(c)}
                         for d, (a, b, c) in zip(dates, q, strict=True)]}


SERVING = ServingSpec(
    request=ForecastRequest, response=ForecastResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.product_id, route="/forecast", inputs=("daily_sales",),
    example=lambda s: {"product_id": batch_values(s, "daily_sales", "product_id", 1)[0], "horizon": 7},
    unknown={"product_id": "P_DOES_NOT_EXIST", "horizon": 7},
    summary="Quantile demand forecast (P10/P50/P90) of a product for the next periods, optionally under a price plan.",
)
