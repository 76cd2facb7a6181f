"""Real-time features: cart events pushed into Feast's online store (``PushSource`` ``cart_push``) and read back.

``POST /events`` on a Bento (see ``ServingSpec.ingest``) calls :func:`push_cart_event`; the recommendation service
reads :func:`carts` on its next request, so an item just added to the cart changes the answer (the seeds' cart ->
coupon scenario) without waiting for a batch. The online row per customer is the whole cart (the push overwrites
it), so a read is one key lookup in SQLite locally or Redis in production.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Literal

from pydantic import Field

from pipelines.spec import ApiModel

PUSH_SOURCE = "cart_push"
VIEW = "customer_cart"
MAX_CART = 50
"""Products kept in a cart (the oldest leave first): bounded rows, whatever a client sends."""

_LOCK = threading.Lock()  # read-modify-write of one process's pushes (a cart is per customer, pushes are rare)


class CartEvent(ApiModel):
    customer_id: str = Field(min_length=1, max_length=64)
    product_id: str = Field(min_length=1, max_length=64)
    event_type: Literal["add_to_cart", "remove_from_cart", "clear_cart"] = Field(
        description="What the customer did; the cart in the online store follows.")


class CartState(ApiModel):
    customer_id: str
    cart: list[str] = Field(description="Products in the cart after the event, oldest first.")
    pushed_at: str = Field(description="When the cart reached the online store (UTC, ISO 8601).")


def carts(store: Any, customer_ids: list[str]) -> dict[str, list[str]]:
    """Each customer's cart from the online store (empty when none was pushed, or it expired)."""
    rows = store.get_online_features(features=[f"{VIEW}:cart_product_ids"],
                                     entity_rows=[{"customer_id": c} for c in customer_ids]).to_dict()
    return {c: [p for p in (v or "").split(",") if p] for c, v in zip(customer_ids, rows["cart_product_ids"],
                                                                     strict=True)}


def push_cart_event(store: Any, event: CartEvent, now: dt.datetime | None = None) -> CartState:
    """Apply ``event`` to the customer's cart and push the new cart to the online store (online only)."""
    import pandas as pd
    from feast.data_source import PushMode

    now = now or dt.datetime.now(dt.timezone.utc)
    with _LOCK:
        cart = carts(store, [event.customer_id])[event.customer_id]
        if event.event_type == "clear_cart":
            cart = []
        elif event.event_type == "remove_from_cart":
            cart = [p for p in cart if p != event.product_id]
        elif event.product_id not in cart:
            cart = [*cart, event.product_id][-MAX_CART:]
        frame = pd.DataFrame({"customer_id": [event.customer_id], "cart_product_ids": [",".join(cart)],
                              "cart_size": [len(cart)], "event_timestamp": [pd.Timestamp(now)]})
        store.push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
    return CartState(customer_id=event.customer_id, cart=cart, pushed_at=now.isoformat())
