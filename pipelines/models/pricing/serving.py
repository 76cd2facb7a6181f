"""Serving of the pricing family: today's (or a given day's) guardrailed price of a product."""

from __future__ import annotations

import datetime as dt
import math

from pydantic import Field

from pipelines.models.pricing.model import load_model
from pipelines.serving import batch_values
from pipelines.spec import ApiModel, ServedResponse, ServingSpec


class PriceRequest(ApiModel):
    product_id: str = Field(min_length=1, max_length=64)
    date: dt.date | None = Field(None, description="Day to price (default: today, UTC).")
    inventory: float | None = Field(None, ge=0, le=1e7, description="Units on hand (default: order-up-to level).")
    last_price: float | None = Field(None, gt=0, le=1e7, description="Yesterday's price (default: base price).")


class PriceResponse(ServedResponse):
    product_id: str
    price: float
    floor: float
    ceiling: float
    max_daily_change: float


def serve_predict(policy, request: PriceRequest) -> dict:
    """Guardrailed price; the guardrails are enforced again here whatever the policy returns."""
    from pipelines.serving import NotFound

    if request.product_id not in policy.index:
        raise NotFound("product_id", f"unknown product {request.product_id!r} (not in the model's catalogue)")
    context = {k: v for k, v in {"date": request.date and str(request.date), "inventory": request.inventory,
                                 "last_price": request.last_price}.items() if v is not None}
    rails = policy.guardrails(request.product_id)
    # Whole cents, rounded inwards so the rounded price never leaves [floor, ceiling].
    lo, hi = math.ceil(rails["floor"] * 100 - 1e-9) / 100, math.floor(rails["ceiling"] * 100 + 1e-9) / 100
    price = min(max(round(policy.price(request.product_id, context), 2), lo), hi)
    return {"product_id": request.product_id, "price": float(price), **rails}


SERVING = ServingSpec(
    request=PriceRequest, response=PriceResponse, load=lambda settings, uri: load_model(uri),
    predict=serve_predict, unit_id=lambda r: r.product_id,
    example=lambda s: {"product_id": batch_values(s, "products", "product_id", 1)[0], "inventory": 10},
    unknown={"product_id": "P_DOES_NOT_EXIST"},
    summary="Today's (or a given day's) price of a product within its floor, ceiling and daily-change limit.",
)
