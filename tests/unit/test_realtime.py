"""Real-time cart features (issue 11, item 5): a pushed cart event reaches the online store and the next
recommendation at once (Feast PushSource, SQLite online store locally)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from pipelines.features import store as feast_store
from pipelines.features.realtime import MAX_CART, CartEvent, carts, push_cart_event


@pytest.fixture
def online(settings):
    feast_store.apply(settings)
    return feast_store.get_store(settings)


def test_a_pushed_cart_event_is_read_back_at_once(online) -> None:
    assert carts(online, ["c1"]) == {"c1": []}
    state = push_cart_event(online, CartEvent(customer_id="c1", product_id="p2", event_type="add_to_cart"))
    assert state.cart == ["p2"]
    push_cart_event(online, CartEvent(customer_id="c1", product_id="p4", event_type="add_to_cart"))
    push_cart_event(online, CartEvent(customer_id="c1", product_id="p4", event_type="add_to_cart"))  # idempotent
    assert carts(online, ["c1", "c2"]) == {"c1": ["p2", "p4"], "c2": []}
    push_cart_event(online, CartEvent(customer_id="c1", product_id="p2", event_type="remove_from_cart"))
    assert carts(online, ["c1"])["c1"] == ["p4"]
    for i in range(MAX_CART + 5):
        push_cart_event(online, CartEvent(customer_id="c2", product_id=f"x{i}", event_type="add_to_cart"))
    assert len(carts(online, ["c2"])["c2"]) == MAX_CART  # bounded, whatever a client sends
    push_cart_event(online, CartEvent(customer_id="c2", product_id="-", event_type="clear_cart"))
    assert carts(online, ["c2"])["c2"] == []


def test_the_next_recommendation_sees_the_cart(online) -> None:
    from pipelines.models.recommendation.mf import MFRecommender
    from pipelines.models.recommendation.serving import CartAware, RecommendRequest, serve_predict

    bought = sparse.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]))
    model = MFRecommender(np.array(["c1", "c2", "c3"]), np.array([f"p{i}" for i in range(6)]), 4, bought,
                          popularity=np.array([1.0, 6.0, 5.0, 4.0, 3.0, 2.0]), item_features=np.eye(6)[:, :3],
                          seed=3)
    model.build_index(hnsw_m=4)
    served = CartAware(model, online)
    request = RecommendRequest(customer_id="c1", k=3)
    before = serve_predict(served, request)
    assert before["cart"] == [] and {r["source"] for r in before["recommendations"]} <= {"personal"}
    first = before["recommendations"][0]["product_id"]
    push_cart_event(online, CartEvent(customer_id="c1", product_id=first, event_type="add_to_cart"))
    after = serve_predict(served, request)
    assert after["cart"] == [first]
    ids = [r["product_id"] for r in after["recommendations"]]
    assert first not in ids and len(ids) == len(set(ids))  # never recommend what is already in the cart
    assert after["recommendations"][0]["source"] == "cart"
