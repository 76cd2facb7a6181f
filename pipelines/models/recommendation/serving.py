"""Serving of the recommendation family: top-k products for a customer from the logged model's ANN index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from pipelines.models.recommendation.model import K, load_model
from pipelines.serving import batch_values
from pipelines.spec import ApiModel, ServedResponse, ServingSpec

ProductId = Annotated[str, Field(min_length=1, max_length=64)]
ProductIds = Annotated[list[ProductId], Field(max_length=500)]
MAX_EXCLUDE = 20_000
"""``exclude`` may name a whole history (a heavy customer's hundreds or thousands of products), not a short list."""


class RecommendRequest(ApiModel):
    customer_id: str = Field(min_length=1, max_length=64)
    k: int = Field(K, ge=1, le=100, description="Number of products.")
    recent_products: ProductIds = Field(default_factory=list,
                                        description="Products a new customer interacted with (cold start).")
    exclude: list[ProductId] = Field(default_factory=list, max_length=MAX_EXCLUDE,
                                     description="Products not to recommend (e.g. the customer's whole history).")


class RecommendedProduct(ApiModel):
    product_id: str
    score: float
    source: Literal["personal", "history", "popular", "cart"] = Field(
        description="Why: the customer's taste, recent products (cold start), popularity, or the live cart.")


class RecommendResponse(ServedResponse):
    customer_id: str
    cart: list[str] = Field(default_factory=list, description="The live cart the answer took into account.")
    recommendations: list[RecommendedProduct]


@dataclass
class CartAware:
    """The registered recommender plus the online store's live carts (``POST /events`` pushes them)."""

    model: object
    store: object | None

    def cart(self, customer_id: str) -> list[str]:
        from pipelines.features.realtime import carts

        return carts(self.store, [customer_id])[customer_id] if self.store is not None else []


def serve_load(settings, uri: str) -> CartAware:
    from pipelines.features.store import shared_store

    return CartAware(load_model(uri), shared_store(settings))


def serve_predict(served: CartAware, request: RecommendRequest) -> dict:
    """Top-k from the ANN index, never an already-bought product; new customers fall back to history/popularity.

    With a live cart, the first half of the list completes the cart (products the model relates to what is in it:
    the cart -> coupon scenario), the rest stays personal; nothing already in the cart is recommended.
    """
    cart = served.cart(request.customer_id)
    exclude = [*request.exclude, *cart]
    recs = served.model.recommend(request.customer_id, k=request.k, recent_products=request.recent_products,
                                  exclude=exclude)
    out = [{"product_id": r.product_id, "score": r.score, "source": r.source} for r in recs]
    if cart:
        # A new customer whose only history is the cart: the model's items-like-these path.
        related = served.model.recommend(CART_CONTEXT, k=request.k, recent_products=cart[-20:], exclude=exclude)
        lead = [{"product_id": r.product_id, "score": r.score, "source": "cart"} for r in related
                if r.source != "popular"][: max(1, request.k // 2)]
        seen = {r["product_id"] for r in lead}
        out = (lead + [r for r in out if r["product_id"] not in seen])[: request.k]
    return {"customer_id": request.customer_id, "cart": cart, "recommendations": out}


CART_CONTEXT = "\x00cart"
"""A customer id no customer has: the model answers it from the given recent products alone."""


SERVING = ServingSpec(
    request=RecommendRequest, response=RecommendResponse, load=serve_load, ingest=True,
    predict=serve_predict, unit_id=lambda r: r.customer_id, route="/recommend",
    example=lambda s: {"customer_id": batch_values(s, "orders", "customer_id", 1)[0], "k": 5},
    unknown={"customer_id": "C_DOES_NOT_EXIST", "k": 5},
    summary="Top-k products for a customer (personal, from recent products, or popular for new customers).",
)
