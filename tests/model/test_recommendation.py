"""Recommendation family: data split, metrics, baselines and oracle units; a trained model's behaviour; own data.

One generated shop (300 customers) is trained once per module; a second, stripped of its truth and renamed, and a
tiny hand-written shop stand in for a user's own data.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from pipelines.data import io
from pipelines.data.generator import generate, load_truth
from pipelines.models.recommendation import SPEC, baselines, metrics
from pipelines.models.recommendation import interactions as rd
from pipelines.models.recommendation.data import prepare
from pipelines.models.recommendation.evaluation import evaluate
from pipelines.models.recommendation.mf import MFRecommender
from pipelines.models.recommendation.candidates import fit_candidate
from pipelines.models.recommendation.model import (RecModel, fit, holdout, load_model, log_model, metric,
                                                   model_ranking, score)
from pipelines.models.recommendation.split import random_split
from pipelines.models.recommendation.oracle import choice_probabilities
from pipelines.models.recommendation.params import RecommendationParams
from pipelines.settings import Settings
from pipelines.spec import DataContext

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
END = dt.date(2025, 6, 30)


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def frame_events(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Events from ``(customer, product, type, time)`` tuples."""
    df = pd.DataFrame(rows, columns=["customer_id", "product_id", "event_type", "event_ts"])
    df["event_ts"] = pd.to_datetime(df["event_ts"], utc=True, format="mixed")
    return df.assign(event_id=[f"e{i}" for i in range(len(df))])


def frame_orders(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "product_id", "order_ts"])
    return df.assign(order_ts=pd.to_datetime(df["order_ts"], utc=True, format="mixed"))


# ---------------------------------------------------------------------------------------------------------------
# Units: interactions and the time split
# ---------------------------------------------------------------------------------------------------------------


def test_interactions_use_only_events_before_the_cutoff_with_type_weights():
    items = np.array(["p1", "p2", "p3"])
    events = frame_events([
        ("c1", "p1", "view", "2024-01-01"), ("c1", "p1", "add_to_cart", "2024-01-01 00:05"),
        ("c1", "p1", "purchase", "2024-01-01 00:06"), ("c1", "p2", "view", "2024-01-02"),
        ("c2", "p3", "view", "2024-01-03"), ("c2", "zz", "view", "2024-01-03"),  # unknown product: dropped
        ("c3", "p2", "purchase", "2024-02-01"),  # after the cutoff: not a training interaction
    ])
    orders = frame_orders([("c2", "p2", "2024-01-04")])  # an order without a purchase event still counts as bought
    train = rd.build_interactions(events, orders, items, ts("2024-01-15"), WEIGHTS)
    assert train.user_ids.tolist() == ["c1", "c2"]
    assert train.weights.toarray().tolist() == [[9.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert train.bought.toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_time_decay_halves_weights_per_half_life():
    events = frame_events([("c1", "p1", "view", "2024-01-05"), ("c1", "p2", "purchase", "2024-01-15")])
    w = rd.event_weights(events, WEIGHTS, ts("2024-01-15"), half_life_days=10)
    assert w == pytest.approx([0.5, 5.0])


def test_holdout_keeps_novel_purchases_of_known_customers_in_the_window():
    items = np.array(["p1", "p2", "p3"])
    events = frame_events([
        ("c1", "p1", "purchase", "2024-01-01"), ("c2", "p2", "view", "2024-01-02"),
        ("c1", "p1", "purchase", "2024-01-20"),  # repeat purchase: unreachable, left out
        ("c1", "p3", "purchase", "2024-01-21"), ("c2", "p1", "purchase", "2024-01-22"),
        ("c2", "p2", "purchase", "2024-02-05"),  # after the window's end
        ("c9", "p1", "purchase", "2024-01-23"),  # never seen before the cutoff: cold
    ])
    orders = frame_orders([("c2", "p3", "2024-01-25")])
    cutoff, end = ts("2024-01-15"), ts("2024-02-01")
    train = rd.build_interactions(events, orders, items, cutoff, WEIGHTS)
    hold = rd.build_holdout(events, orders, train, cutoff, end)
    assert [train.user_ids[u] for u in hold.users] == ["c1", "c2"]
    assert [items[r].tolist() for r in hold.relevant] == [["p3"], ["p1", "p3"]]
    assert (hold.cold_users, hold.repeat_purchases) == (1, 1)


def test_item_side_features_one_hot_and_relative_price():
    products = pd.DataFrame({"product_id": ["b", "a", "c"], "category": ["x", "x", "y"],
                             "base_price": [20.0, 5.0, 7.0]})
    feats, names = rd.item_side_features(products, np.array(["a", "b", "c"]))
    assert names == ["category=x", "category=y", "relative_log_price"]
    assert feats[:, :2].tolist() == [[1, 0], [1, 0], [0, 1]]
    median_x = (np.log(5.0) + np.log(20.0)) / 2
    assert feats[:, 2] == pytest.approx([np.log(5.0) - median_x, np.log(20.0) - median_x, 0.0], abs=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Units: ranking and metrics
# ---------------------------------------------------------------------------------------------------------------


def test_top_k_excludes_pads_and_breaks_ties_by_column():
    scores = np.array([[0.1, 0.9, 0.9, 0.5], [1.0, 2.0, 3.0, 4.0]])
    exclude = sparse.csr_matrix(np.array([[0, 0, 0, 0], [1, 1, 1, 0]]))
    assert metrics.top_k(scores, 3, exclude).tolist() == [[1, 2, 3], [3, -1, -1]]
    assert metrics.top_k(scores, 6).tolist() == [[1, 2, 3, 0, -1, -1], [3, 2, 1, 0, -1, -1]]


def test_metrics_by_hand():
    ranked = np.array([[3, 1, 0], [2, 0, 1]])
    relevant = [np.array([1, 4]), np.array([2])]
    # user 1: hit at rank 2 of 2 relevant; user 2: hit at rank 1.
    assert metrics.recall_at_k(ranked, relevant, 3) == pytest.approx((0.5 + 1.0) / 2)
    ndcg1 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert metrics.ndcg_at_k(ranked, relevant, 3) == pytest.approx((ndcg1 + 1.0) / 2)
    assert metrics.coverage(ranked, n_items=8, k=2) == pytest.approx(4 / 8)  # items 0..3 shown in the top 2
    assert metrics.recall_at_k(ranked, relevant, 1) == pytest.approx(0.5)


def test_item_knn_follows_co_occurrence_and_popularity_counts_weight():
    items = np.array(["a", "b", "c", "d"])
    w = sparse.csr_matrix(np.array([[5, 5, 0, 0], [3, 3, 0, 0], [0, 0, 5, 1], [5, 0, 0, 0]], dtype="float32"))
    train = rd.Interactions(np.array(["u1", "u2", "u3", "u4"]), items, w, sparse.csr_matrix(w.shape))
    scores = baselines.item_knn_scores(train, np.array([3]))  # u4 has only "a": "b" co-occurs with it
    assert np.argmax(scores[0, 1:]) + 1 == 1 and scores[0, 2] == 0.0
    assert baselines.popularity_scores(train, np.array([0, 1]))[1].tolist() == [13, 8, 5, 1]


def test_oracle_matches_the_generators_choice_probabilities(tmp_path):
    from pipelines.data import generator as g

    batch = generate(tmp_path / "landing", tmp_path / "truth", customers=60, seed=5, end=END, history_days=120)
    customers_truth, products_truth, meta = load_truth(batch.truth_dir)
    products = io.read_table(batch.batch_dir, "products")
    ids = np.array(sorted(customers_truth["customer_id"]))[:7]
    items = np.array(sorted(products["product_id"]))
    got = choice_probabilities(customers_truth, products_truth, products, ids, items)
    # Re-draw the latent products and customers from the generator's own streams and ask it directly.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(5).spawn(7)]
    prod = g._simulate_products(streams[0], meta["products"])
    cust = g._simulate_customers(streams[2], meta["customers"], meta["history_days"])
    want = g._choice_probabilities(cust, prod, slice(0, meta["customers"]))
    rows = [int(c[1:]) - 1 for c in ids]
    cols = [int(p[1:]) - 1 for p in items]
    np.testing.assert_allclose(got, want[np.ix_(rows, cols)], rtol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Units: the model object
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> MFRecommender:
    """An untrained model over 3 customers and 6 products, with its ANN index."""
    bought = sparse.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]))
    model = MFRecommender(np.array(["c1", "c2", "c3"]), np.array([f"p{i}" for i in range(6)]), 4, bought,
                          popularity=np.array([1.0, 6.0, 5.0, 4.0, 3.0, 2.0]), item_features=np.eye(6)[:, :3],
                          seed=3)
    model.build_index(hnsw_m=4)
    return model


def test_recommend_excludes_bought_and_explicit_exclusions(tiny_model):
    got = [r.product_id for r in tiny_model.recommend("c1", 10, exclude=["p5"])]
    assert sorted(got) == ["p2", "p3", "p4"]
    assert [r.product_id for r in tiny_model.recommend("c3", 3)] == ["p5"]  # only one product left
    assert tiny_model.recommend("c2", 0) == []
    assert {r.source for r in tiny_model.recommend("c2", 6)} == {"personal"}


def test_recommend_cold_start(tiny_model):
    popular = tiny_model.recommend("someone-new", 3)
    assert [(r.product_id, r.source) for r in popular] == [("p1", "popular"), ("p2", "popular"), ("p3", "popular")]
    folded = tiny_model.recommend("someone-new", 3, recent_products=["p0", "unknown"])
    assert len(folded) == 3 and {r.source for r in folded} == {"history"}
    assert isinstance(folded[0].product_id, str) and isinstance(folded[0].score, float)


def test_state_round_trip_without_pickle(tiny_model, tmp_path):
    tiny_model.save_state(tmp_path)
    again = MFRecommender.from_state(tiny_model.state_dict(), tmp_path)
    np.testing.assert_array_equal(again.score_customers(["c1", "c2", "zz"]),
                                  tiny_model.score_customers(["c1", "c2", "zz"]))
    assert again.recommend("c1", 4) == tiny_model.recommend("c1", 4)


def test_params_come_from_cli_strings():
    params = SPEC.parse_params({"loss": "bpr", "dim": "8", "item_features": "false", "half_life_days": "30"})
    assert (params.loss, params.dim, params.item_features, params.half_life_days) == ("bpr", 8, False, 30.0)
    cfg = params.train_config("cpu")
    assert (cfg.epochs, cfg.user_reg, cfg.item_reg) == (20, 0.01, 0.01)  # per-loss defaults, no extra item L2
    default = SPEC.parse_params({}).train_config("cpu")
    assert (default.loss, default.epochs, default.user_reg, default.item_reg) == ("softmax", 60, 0.1, 1.0)
    with pytest.raises(ValueError):
        SPEC.parse_params({"loss": "als"})


# ---------------------------------------------------------------------------------------------------------------
# Behaviour of a model trained on a generated shop
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    batch = generate(root / "landing", root / "truth", customers=300, seed=42, end=END)
    ctx = DataContext(settings=Settings(home=root / "home"), batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir)
    return ctx


@pytest.fixture(scope="module")
def trained(shop):
    params = RecommendationParams()
    data = prepare(shop, params)
    model = fit(data, params)
    return data, model, evaluate(model, data, params), params


def test_split_is_by_time(trained):
    data, *_ = trained
    assert data.end - data.cutoff == pd.Timedelta(days=28)
    assert len(data.holdout.users) > 30 and data.oracle.shape == (len(data.holdout.users), data.train.n_items)


def test_recommendations_never_include_already_bought_products(trained):
    data, model, *_ = trained
    bought = data.train.bought
    buyers = np.flatnonzero(np.diff(bought.indptr) > 0)
    assert len(buyers) > 100
    for row in buyers:
        recs = {r.product_id for r in model.recommend(data.train.user_ids[row], 10)}
        assert len(recs) == 10
        assert not recs & set(data.train.item_ids[bought[row].indices])
    ranked = model_ranking(model, data)  # the evaluation path excludes them too
    assert not any(np.isin(r, bought[u].indices).any() for r, u in zip(ranked, data.holdout.users, strict=True))


def test_new_customer_gets_the_popular_products(trained):
    data, model, *_ = trained
    got = model.evaluated.recommend("C999999", 10)
    assert len(got) == 10 and len({r.product_id for r in got}) == 10
    assert {r.product_id for r in got} <= set(data.train.item_ids)
    top = data.train.item_ids[np.argsort(-rd.popularity(data.train), kind="stable")[:10]]
    assert [r.product_id for r in got] == top.tolist()


def test_beats_its_best_baseline_and_stays_below_the_oracle(trained):
    _, _, ev, _ = trained
    m = ev.metrics
    best = max(ev.baselines.values())
    assert best < m["ndcg_at_10"] < ev.oracle
    assert max(m["baseline_popularity_recall_at_10"], m["baseline_item_knn_recall_at_10"]) < m["recall_at_10"]
    assert m["coverage_at_10"] > m["baseline_popularity_coverage_at_10"]
    assert m["ann_recall_at_10"] >= 0.95
    assert m["served_recall_at_10"] == pytest.approx(m["recall_at_10"], abs=0.02)
    assert {"recall_at_k.png", "item_embeddings.png", "comparison.png"} <= set(ev.figures)


def test_scores_are_deterministic_with_the_seed(trained):
    data, model, _, params = trained
    again = fit(data, params)
    assert again.candidate == model.candidate and again.selection == model.selection
    for part in ("evaluated", "served"):
        np.testing.assert_array_equal(getattr(again, part).item_vectors(), getattr(model, part).item_vectors())
        np.testing.assert_array_equal(getattr(again, part).user_vectors(), getattr(model, part).user_vectors())
    assert score(again, data) == score(model, data)
    mf = params.model_copy(update={"algorithm": "mf"})
    one, other = (fit_candidate("model", data.train, p, data.item_features) for p in
                  (mf, mf.model_copy(update={"seed": 7})))
    assert not np.array_equal(other.item_vectors(), one.item_vectors())


def test_logged_model_round_trips_through_mlflow(trained, tmp_path):
    import mlflow

    data, model, *_ = trained
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        exp = mlflow.create_experiment("rec-test", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp):
            info = log_model(model, data)
        loaded = load_model(info.model_uri)
        assert "pytorch" in mlflow.models.get_model_info(info.model_uri).flavors
        pyfunc = mlflow.pyfunc.load_model(info.model_uri)  # the exported scorer, no ShopFlow code needed
        np.testing.assert_allclose(pyfunc.predict(np.array([0, 1], dtype=np.int64)),
                                   model.served.scores(np.array([0, 1])), rtol=1e-4, atol=1e-4)
    finally:
        mlflow.set_tracking_uri(previous)
    assert score(loaded, data) == score(model, data)
    pd.testing.assert_frame_equal(holdout(loaded, data), holdout(model, data))
    assert (loaded.candidate, loaded.selection) == (model.candidate, model.selection)
    customer = data.eval_customers[0]
    assert loaded.recommend(customer, 10) == model.recommend(customer, 10)


# ---------------------------------------------------------------------------------------------------------------
# Bring your own data: no truth, other ids, events only
# ---------------------------------------------------------------------------------------------------------------


def _own_data_context(root: Path, tables: dict[str, pd.DataFrame]) -> DataContext:
    batch_dir = root / "batch"
    for name, df in tables.items():
        io.write_table(df, batch_dir, name)
    return DataContext(settings=Settings(home=root / "home"), batch_dir=batch_dir, batch_id="own", truth_dir=None)


def test_own_events_without_truth_or_orders(shop, tmp_path):
    """A generated shop renamed, stripped of its truth and of its orders table trains with oracle None."""
    tables = {name: shop.table(name).copy() for name in ("customers", "products", "events", "orders", "daily_sales")}
    cust = {c: f"user-{i:05d}" for i, c in enumerate(tables["customers"]["customer_id"])}
    prod = {p: f"sku-{i}" for i, p in enumerate(tables["products"]["product_id"][::-1])}
    for name, df in tables.items():
        if "customer_id" in df:
            df["customer_id"] = df["customer_id"].map(cust)
        if "product_id" in df:
            df["product_id"] = df["product_id"].map(prod)
    tables["products"]["category"] = "dept-" + tables["products"]["category"].astype(str).str[:3]
    tables["orders"] = tables["orders"].iloc[:0]  # implicit feedback only
    params = RecommendationParams(epochs=30)
    data = prepare(_own_data_context(tmp_path, tables), params)
    assert data.oracle is None and data.train.item_ids[0].startswith("sku-")
    model = fit(data, params)
    ev = evaluate(model, data, params)
    assert ev.oracle is None and "oracle_recall_at_10" not in ev.metrics
    assert ev.baselines["popularity"] < ev.metrics["ndcg_at_10"] <= 1.0
    known = data.train.user_ids[0]
    bought = set(data.train.item_ids[data.train.bought[0].indices])
    assert bought and not bought & {r.product_id for r in model.recommend(known, 10)}


def hand_written_shop() -> dict[str, pd.DataFrame]:
    """Two tastes over 8 products: 'reader' customers browse and buy books, 'cook' customers kitchen goods."""
    products = pd.DataFrame({
        "product_id": [f"b{i}" for i in range(4)] + [f"k{i}" for i in range(4)],
        "category": ["books"] * 4 + ["kitchen"] * 4, "brand": "x",
        "base_price": [10.0, 12.0, 9.0, 15.0, 30.0, 25.0, 40.0, 35.0], "cost": 1.0, "image_file": None,
    })
    rows = []
    start = ts("2025-01-01")
    for c in range(24):
        own = "b" if c % 2 == 0 else "k"
        for day in range(0, 80, 4):
            # Views cycle through the customer's own category; one purchase before the cutoff, one after.
            item = f"{own}{(c + day // 4) % 4}"
            kind = "purchase" if day in (8, 64) else "view"
            rows.append((f"cust{c:02d}", item, kind, start + pd.Timedelta(days=day, hours=c % 7)))
    events = frame_events(rows)
    buys = events[events["event_type"] == "purchase"]
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(len(buys))], "customer_id": buys["customer_id"].values,
                           "product_id": buys["product_id"].values, "order_ts": buys["event_ts"].values,
                           "quantity": 1, "unit_price": 10.0, "amount": 10.0})
    customers = pd.DataFrame({"customer_id": [f"cust{c:02d}" for c in range(24)],
                              "signup_ts": start - pd.Timedelta(days=1), "region": "north", "segment": "regular"})
    sales = pd.DataFrame({"product_id": products["product_id"], "date": start, "price": 10.0, "units": 1})
    return {"customers": customers, "products": products, "events": events, "orders": orders, "daily_sales": sales}


def test_hand_written_shop_learns_the_two_tastes(tmp_path):
    params = RecommendationParams(dim=4, epochs=80, test_days=28)
    data = prepare(_own_data_context(tmp_path, hand_written_shop()), params)
    model = fit(data, params)
    ev = evaluate(model, data, params)
    assert ev.oracle is None
    assert ev.metrics["recall_at_10"] == 1.0  # 10 >= the whole catalogue: every novel purchase is listed
    for customer, own in (("cust00", "b"), ("cust01", "k")):
        top = [r.product_id for r in model.recommend(customer, 2)]
        assert top and all(p.startswith(own) for p in top), (customer, top)


def test_prepare_explains_when_the_window_has_no_purchases(tmp_path):
    tables = hand_written_shop()
    ev = tables["events"]
    tables["events"] = ev[(ev["event_type"] != "purchase") | (ev["event_ts"] < ts("2025-02-01"))]
    tables["orders"] = tables["orders"].iloc[:0]
    with pytest.raises(ValueError, match="nothing to evaluate"):
        prepare(_own_data_context(tmp_path, tables), RecommendationParams())


# ---------------------------------------------------------------------------------------------------------------
# The gate's contract: per-customer holdout frames, selection on validation, truth only for the oracle
# ---------------------------------------------------------------------------------------------------------------


def test_holdout_frames_give_the_reported_metrics(trained):
    data, model, ev, _ = trained
    frame = holdout(model, data)
    assert frame.index.is_unique and len(frame) == len(data.holdout.users)
    assert frame.index.tolist() == data.eval_customers.tolist()
    assert metric(frame) == pytest.approx(ev.metrics[SPEC.primary_metric], abs=1e-12)
    assert frame["recall_at_10"].mean() == pytest.approx(ev.metrics["recall_at_10"], abs=1e-12)
    assert set(ev.units) == set(ev.baselines)
    for name, units in ev.units.items():
        assert units.index.equals(frame.index)
        assert metric(units) == pytest.approx(ev.baselines[name], abs=1e-12)
    resample = frame.iloc[[0, 0, 1]]
    assert metric(resample) == pytest.approx(frame["ndcg_at_10"].iloc[[0, 0, 1]].mean())
    assert np.isnan(metric(frame.iloc[:0]))


def test_the_candidate_is_chosen_on_validation_and_is_what_is_registered(trained):
    data, model, ev, _ = trained
    main = {k: v for k, v in ev.selection.items() if k in ("model", "popularity", "item_knn")}
    assert set(main) == {"model", "popularity", "item_knn"}
    assert ev.candidate == model.candidate == max(main, key=main.get)
    assert ev.selection["model"] == max(ev.selection["model_ease"], ev.selection["model_mf"])
    # The validation split is carved from the training part: its customers' validation products are training
    # interactions of the holdout's split, never holdout products.
    from pipelines.models.recommendation.model import _validation

    val = _validation(data, RecommendationParams())
    assert val.end == data.cutoff and val.cutoff < data.cutoff
    # Served: the same candidate refitted on every interaction (it knows customers the training part does not).
    assert model.served.kind == model.evaluated.kind
    assert len(model.served.user_ids) >= len(model.evaluated.user_ids)


def test_a_winning_baseline_is_logged_loaded_and_served_like_the_model(trained, tmp_path):
    import mlflow

    data, _, ev, params = trained
    pop = RecModel(*(fit_candidate("popularity", data.train, params, data.item_features) for _ in range(2)),
                   candidate="popularity", selection={"popularity": 1.0})
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        exp = mlflow.create_experiment("rec-baseline", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp):
            info = log_model(pop, data)
        loaded = load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    assert loaded.candidate == "popularity" and loaded.served.kind == "popularity"
    assert metric(holdout(loaded, data)) == pytest.approx(ev.baselines["popularity"], abs=1e-9)
    customer = data.eval_customers[0]
    seen = set(data.train.item_ids[data.train.bought[data.holdout.users[0]].indices])
    got = [r.product_id for r in loaded.recommend(customer, 5)]
    assert len(got) == 5 and not set(got) & seen


def test_truth_feeds_only_the_oracle(shop, trained):
    data, model, _, params = trained
    blind = prepare(DataContext(settings=shop.settings, batch_dir=shop.batch_dir, batch_id=shop.batch_id,
                                truth_dir=None), params)
    assert blind.oracle is None and data.oracle is not None
    np.testing.assert_array_equal(blind.train.weights.toarray(), data.train.weights.toarray())
    again = fit(blind, params)
    pd.testing.assert_frame_equal(holdout(again, blind), holdout(model, data))
    assert again.selection == model.selection
    assert evaluate(again, blind, params).oracle is None


# ---------------------------------------------------------------------------------------------------------------
# Ratings and the random per-user split
# ---------------------------------------------------------------------------------------------------------------


def test_low_ratings_are_interactions_and_seen_but_not_positives():
    ratings = pd.DataFrame({"customer_id": ["u1", "u1", "u2"], "product_id": ["a", "b", "a"],
                            "rating": [5.0, 2.0, 3.0], "ts": ["2024-01-01", "2024-01-02", "2024-01-03"]})
    events = rd.ratings_as_events(ratings, threshold=4.0)
    assert events["event_type"].tolist() == ["purchase", "rated", "rated"]
    weights = RecommendationParams(weight_rating_low=0.5).weights()
    train = rd.build_interactions(events, frame_orders([]), np.array(["a", "b", "c"]), ts("2025-01-01"), weights)
    assert train.weights.toarray().tolist() == [[5.0, 0.5, 0.0], [0.5, 0.0, 0.0]]
    assert train.bought.toarray().tolist() == [[1, 1, 0], [1, 0, 0]]  # every rated product is seen


def test_random_split_holds_out_a_share_of_each_customers_products():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"p{p}", "purchase" if rng.random() < 0.6 else "rated", "2024-01-01")
            for u in range(30) for p in rng.choice(50, size=8 + u % 5, replace=False)]
    events = frame_events(rows)
    items = np.array(sorted({r[1] for r in rows}))
    weights = RecommendationParams().weights()
    split = random_split(events, frame_orders([]), items, weights, ts("2024-02-01"), 0.25, seed=3)
    train, hold = split.train, split.holdout
    per_user = events.groupby("customer_id")["product_id"].nunique()
    assert (np.diff(train.weights.indptr) == (per_user - np.round(0.25 * per_user)).to_numpy()).all()
    positives = set(map(tuple, events.loc[events["event_type"] == "purchase", ["customer_id", "product_id"]]
                        .to_numpy()))
    for u, rel in zip(hold.users, hold.relevant, strict=True):
        assert not train.weights[u, rel].toarray().any()  # held out, not trained on
        assert all((train.user_ids[u], items[r]) in positives for r in rel)  # only positives are relevant
    again = random_split(events, frame_orders([]), items, weights, ts("2024-02-01"), 0.25, seed=3)
    assert (again.train.weights != train.weights).nnz == 0  # seeded
    other = random_split(events, frame_orders([]), items, weights, ts("2024-02-01"), 0.25, seed=4)
    assert (other.train.weights != train.weights).nnz > 0


def test_exclude_takes_a_whole_history(trained):
    from pipelines.models.recommendation.serving import RecommendRequest

    data, model, *_ = trained
    history = [f"P{i:04d}" for i in range(3000)]
    assert len(RecommendRequest(customer_id="C1", exclude=history).exclude) == 3000
    customer = data.train.user_ids[0]
    catalogue = model.served.item_ids.tolist()
    keep = catalogue[-3:]
    got = [r.product_id for r in model.recommend(customer, 10, exclude=catalogue[:-3])]
    assert set(got) <= set(keep)
