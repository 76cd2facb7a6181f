"""Feature snapshots and the Feast store (local profile) on tiny hand-made batches.

The hand-checked batch spans 2024-01-01 .. 2024-02-28, so snapshots fall on 2024-02-29 (midnight after the last
day), 02-22, 02-15, ... 01-04.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.io import write_table
from pipelines.features import build, store
from pipelines.settings import Settings

FEAST = Path(sys.executable).parent / "feast"
CHURN_FEATURES = [
    "recency_days", "frequency_90d", "monetary_90d", "frequency_365d", "monetary_365d", "avg_order_value",
    "tenure_days", "views_7d", "views_30d", "carts_30d", "purchases_30d", "active_days_30d", "cart_to_purchase_30d",
    "n_categories_90d", "top_category_share_90d",
]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def tiny_tables() -> dict[str, pd.DataFrame]:
    """c1 orders 3 times over two categories; c2 never orders and views once exactly at a snapshot time (02-22 00:00);
    c3 signs up on 02-16 and orders on the last day."""
    customers = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "signup_ts": [ts("2024-01-01"), ts("2024-01-20"), ts("2024-02-16 08:00")],
        "region": "north", "segment": "regular",
    })
    products = pd.DataFrame({
        "product_id": ["p1", "p2"], "category": ["A", "B"], "brand": "x",
        "base_price": [10.0, 20.0], "cost": [5.0, 10.0], "image_file": None,
    })
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3", "o4"],
        "customer_id": ["c1", "c1", "c1", "c3"],
        "product_id": ["p1", "p2", "p1", "p2"],
        "order_ts": [ts("2024-01-05 10:00"), ts("2024-02-10 12:00"), ts("2024-02-20 12:00"), ts("2024-02-28 18:00")],
        "quantity": [3, 1, 1, 2], "unit_price": [10.0, 20.0, 10.0, 20.0], "amount": [30.0, 20.0, 10.0, 40.0],
    })
    event_rows = [
        ("c1", "p1", "view", "2024-01-01 09:00"),
        ("c1", "p1", "view", "2024-02-01 10:00"),
        ("c1", "p1", "view", "2024-02-25 10:00"),
        ("c1", "p2", "view", "2024-02-25 11:00"),
        ("c1", "p1", "view", "2024-02-27 09:00"),
        ("c1", "p1", "add_to_cart", "2024-02-27 09:05"),
        ("c1", "p1", "purchase", "2024-02-27 09:10"),
        ("c2", "p2", "view", "2024-02-22 00:00"),
        ("c3", "p2", "view", "2024-02-28 18:00"),
    ]
    events = pd.DataFrame(event_rows, columns=["customer_id", "product_id", "event_type", "event_ts"])
    events["event_ts"] = pd.to_datetime(events["event_ts"], utc=True)
    events.insert(0, "event_id", [f"e{i}" for i in range(len(events))])
    days = pd.date_range("2024-01-01", "2024-02-28", freq="D", tz="UTC")
    daily_sales = pd.concat([
        # p1 is on promotion (8.0) over the last four days.
        pd.DataFrame({"product_id": "p1", "date": days, "price": np.where(days >= ts("2024-02-25"), 8.0, 10.0),
                      "units": 1}),
        pd.DataFrame({"product_id": "p2", "date": days, "price": 20.0, "units": 2}),
    ], ignore_index=True)
    return {"customers": customers, "products": products, "events": events, "orders": orders,
            "daily_sales": daily_sales}


def with_order(tables: dict[str, pd.DataFrame], customer: str, when: str, amount: float) -> dict[str, pd.DataFrame]:
    extra = pd.DataFrame({"order_id": ["extra"], "customer_id": [customer], "product_id": ["p1"],
                          "order_ts": [ts(when)], "quantity": [1], "unit_price": [amount], "amount": [amount]})
    return {**tables, "orders": pd.concat([tables["orders"], extra], ignore_index=True)}


def write_batch(tables: dict[str, pd.DataFrame], batch_dir: Path) -> Path:
    for name, frame in tables.items():
        write_table(frame, batch_dir, name)
    return batch_dir


def built_home(tmp_path: Path, name: str, tables: dict[str, pd.DataFrame]) -> Settings:
    """Settings of a fresh home whose feature files were built from ``tables`` and registered with Feast."""
    settings = Settings(home=tmp_path / name)
    build.build_feature_tables(write_batch(tables, tmp_path / f"{name}-batch"), settings)
    store.apply(settings)
    return settings


def row(frame: pd.DataFrame, key: str, at: str, id_col: str = "customer_id") -> pd.Series:
    hits = frame[(frame[id_col] == key) & (frame["event_timestamp"] == ts(at))]
    assert len(hits) == 1, f"expected one row for {key} at {at}, got {len(hits)}"
    return hits.iloc[0]


# ---------------------------------------------------------------- feature values


def test_snapshot_grid_and_signup_filter():
    frames = build.compute_feature_tables(tiny_tables())
    rfm = frames["customer_rfm"]
    times = sorted(rfm["event_timestamp"].unique())
    assert times[-1] == ts("2024-02-29") and times[0] == ts("2024-01-04")
    assert all(b - a == pd.Timedelta(days=7) for a, b in zip(times, times[1:]))
    first = rfm.groupby("customer_id")["event_timestamp"].min()
    assert first.to_dict() == {"c1": ts("2024-01-04"), "c2": ts("2024-01-25"), "c3": ts("2024-02-22")}
    assert build.snapshot_end(tiny_tables()["events"], tiny_tables()["orders"]) == ts("2024-02-29")
    products = frames["product_sales"]
    assert products["event_timestamp"].nunique() == 59  # daily, 2024-01-02 .. 2024-02-29
    assert (frames["customer_rfm"]["created_timestamp"] == ts("2024-02-29")).all()


def test_hand_checked_values():
    f = build.compute_feature_tables(tiny_tables())
    rfm, act, mix, prod = (f[n] for n in build.FEATURE_TABLES)

    c1 = row(rfm, "c1", "2024-02-29")
    assert c1["recency_days"] == pytest.approx(8.5)  # last order 02-20 12:00
    assert (c1["frequency_90d"], c1["monetary_90d"]) == (3, pytest.approx(60.0))
    assert (c1["frequency_365d"], c1["monetary_365d"]) == (3, pytest.approx(60.0))
    assert c1["avg_order_value"] == pytest.approx(20.0)
    assert c1["tenure_days"] == pytest.approx(59.0)
    a1 = row(act, "c1", "2024-02-29")
    assert [a1[c] for c in ("views_7d", "views_30d", "carts_30d", "purchases_30d", "active_days_30d")] == [3, 4, 1, 1, 3]
    assert a1["cart_to_purchase_30d"] == pytest.approx(1.0)
    m1 = row(mix, "c1", "2024-02-29")
    assert m1["n_categories_90d"] == 2 and m1["top_category_share_90d"] == pytest.approx(2 / 3)

    # A week earlier: the 02-20 order is in, the late-February browsing is not.
    assert row(rfm, "c1", "2024-02-22")["recency_days"] == pytest.approx(1.5)
    a1_early = row(act, "c1", "2024-02-22")
    assert [a1_early[c] for c in ("views_7d", "views_30d", "active_days_30d", "carts_30d")] == [0, 1, 1, 0]
    assert a1_early["cart_to_purchase_30d"] == 0.0

    # Never ordered: recency falls back to tenure, every amount is 0 (not null).
    c2 = row(rfm, "c2", "2024-02-29")
    assert c2["recency_days"] == pytest.approx(40.0) and c2["tenure_days"] == pytest.approx(40.0)
    assert (c2["frequency_90d"], c2["monetary_90d"], c2["avg_order_value"]) == (0, 0.0, 0.0)
    assert row(mix, "c2", "2024-02-29")[["n_categories_90d", "top_category_share_90d"]].tolist() == [0, 0.0]
    # c2's view at exactly 02-22 00:00 is not "before" the 02-22 snapshot, but is in the next one.
    assert row(act, "c2", "2024-02-22")["views_7d"] == 0
    assert row(act, "c2", "2024-02-29")["views_7d"] == 1

    c3 = row(rfm, "c3", "2024-02-29")
    assert c3["recency_days"] == pytest.approx(0.25) and c3["tenure_days"] == pytest.approx(12 + 16 / 24)
    assert (c3["frequency_90d"], c3["avg_order_value"]) == (1, pytest.approx(40.0))
    assert row(rfm, "c3", "2024-02-22")["recency_days"] == pytest.approx(5 + 16 / 24)

    p1 = row(prod, "p1", "2024-02-29", "product_id")
    assert p1["price_7d_avg"] == pytest.approx((3 * 10 + 4 * 8) / 7)
    assert (p1["units_7d"], p1["units_28d"], p1["views_7d"]) == (7, 28, 2)
    p2 = row(prod, "p2", "2024-02-29", "product_id")
    assert (p2["price_7d_avg"], p2["units_7d"], p2["views_7d"]) == (pytest.approx(20.0), 14, 3)


@pytest.mark.parametrize("empty", ["orders", "events", "daily_sales"])
def test_empty_table_gives_zeros_not_nulls(empty):
    tables = tiny_tables()
    tables[empty] = tables[empty].iloc[:0]
    for name, frame in build.compute_feature_tables(tables).items():
        assert len(frame) and frame.notna().all().all(), name


def random_tables(seed: int = 7) -> dict[str, pd.DataFrame]:
    """A small random shop; a fifth of the times fall exactly on midnight to exercise window boundaries."""
    rng = np.random.default_rng(seed)
    start, n_days = ts("2024-03-01"), 80

    def times(n: int) -> pd.Series:
        days = rng.uniform(0, n_days, n)
        days = np.where(rng.random(n) < 0.2, np.floor(days), days)
        return pd.Series(start + pd.to_timedelta(days, unit="D"))

    n_c, n_p, n_e, n_o = 30, 6, 1500, 200
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n_c)],
                              "signup_ts": start + pd.to_timedelta(rng.uniform(-20, 60, n_c), unit="D"),
                              "region": "r", "segment": "s"})
    products = pd.DataFrame({"product_id": [f"p{i}" for i in range(n_p)], "category": [f"k{i % 3}" for i in range(n_p)],
                             "brand": "b", "base_price": 10.0 + np.arange(n_p), "cost": 1.0, "image_file": None})
    events = pd.DataFrame({"event_id": [f"e{i}" for i in range(n_e)],
                           "customer_id": rng.choice(customers["customer_id"], n_e),
                           "product_id": rng.choice(products["product_id"], n_e),
                           "event_type": rng.choice(["view", "add_to_cart", "purchase"], n_e, p=[0.7, 0.2, 0.1]),
                           "event_ts": times(n_e)})
    qty = rng.integers(1, 4, n_o)
    price = np.round(rng.uniform(5, 50, n_o), 2)
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(n_o)],
                           "customer_id": rng.choice(customers["customer_id"], n_o),
                           "product_id": rng.choice(products["product_id"], n_o), "order_ts": times(n_o),
                           "quantity": qty, "unit_price": price, "amount": qty * price})
    days = pd.date_range(start, periods=n_days, freq="D")
    # Product p5 has no sales rows: its price falls back to the list price.
    sales = pd.MultiIndex.from_product([products["product_id"][:-1], days], names=["product_id", "date"])
    daily_sales = sales.to_frame(index=False).assign(price=rng.uniform(5, 50, len(sales)),
                                                     units=rng.integers(0, 9, len(sales)))
    return {"customers": customers, "products": products, "events": events, "orders": orders,
            "daily_sales": daily_sales}


def reference_customer_row(tables: dict[str, pd.DataFrame], cid: str, t: pd.Timestamp) -> dict[str, float]:
    """Brute-force definition of every customer feature: rows strictly before ``t`` only."""
    day = pd.Timedelta(days=1)
    signup = tables["customers"].set_index("customer_id").loc[cid, "signup_ts"]
    o = tables["orders"][(tables["orders"]["customer_id"] == cid) & (tables["orders"]["order_ts"] < t)]
    e = tables["events"][(tables["events"]["customer_id"] == cid) & (tables["events"]["event_ts"] < t)]

    def orders_in(days):
        return o[o["order_ts"] >= t - pd.Timedelta(days=days)]

    def events_in(days, kind=None):
        w = e[e["event_ts"] >= t - pd.Timedelta(days=days)]
        return w if kind is None else w[w["event_type"] == kind]

    cats = orders_in(90).merge(tables["products"], on="product_id")["category"].value_counts()
    carts, purchases = len(events_in(30, "add_to_cart")), len(events_in(30, "purchase"))
    return {
        "recency_days": (t - (o["order_ts"].max() if len(o) else signup)) / day,
        "frequency_90d": len(orders_in(90)), "monetary_90d": orders_in(90)["amount"].sum(),
        "frequency_365d": len(orders_in(365)), "monetary_365d": orders_in(365)["amount"].sum(),
        "avg_order_value": o["amount"].mean() if len(o) else 0.0,
        "tenure_days": (t - signup) / day,
        "views_7d": len(events_in(7, "view")), "views_30d": len(events_in(30, "view")),
        "carts_30d": carts, "purchases_30d": purchases,
        "active_days_30d": events_in(30)["event_ts"].dt.floor("D").nunique(),
        "cart_to_purchase_30d": purchases / carts if carts else 0.0,
        "n_categories_90d": len(cats), "top_category_share_90d": cats.max() / cats.sum() if len(cats) else 0.0,
    }


def test_vectorised_features_match_brute_force_definition():
    tables = random_tables()
    frames = build.compute_feature_tables(tables)
    customer = frames["customer_rfm"]
    for name in ("customer_activity", "customer_category_mix"):
        customer = customer.merge(frames[name].drop(columns="created_timestamp"), on=["customer_id", "event_timestamp"])
    signups = tables["customers"].set_index("customer_id")["signup_ts"]
    assert (customer["event_timestamp"] > customer["customer_id"].map(signups)).all()
    assert len(customer) > 200
    for _, got in customer.iterrows():
        want = reference_customer_row(tables, got["customer_id"], got["event_timestamp"])
        for feature, value in want.items():
            assert got[feature] == pytest.approx(value, abs=1e-6), (got["customer_id"], got["event_timestamp"], feature)

    products = frames["product_sales"]
    sales, views = tables["daily_sales"], tables["events"]
    for _, got in products.sample(60, random_state=0).iterrows():
        t, pid = got["event_timestamp"], got["product_id"]
        s = sales[(sales["product_id"] == pid) & (sales["date"] < t)]
        s7, s28 = s[s["date"] >= t - pd.Timedelta(days=7)], s[s["date"] >= t - pd.Timedelta(days=28)]
        v = views[(views["product_id"] == pid) & (views["event_type"] == "view") & (views["event_ts"] < t)
                  & (views["event_ts"] >= t - pd.Timedelta(days=7))]
        base = tables["products"].set_index("product_id").loc[pid, "base_price"]
        assert got["price_7d_avg"] == pytest.approx(s7["price"].mean() if len(s7) else base)
        assert (got["units_7d"], got["units_28d"], got["views_7d"]) == (s7["units"].sum(), s28["units"].sum(), len(v))


def test_feature_files_match_the_feast_views(tmp_path):
    """Column names and dtypes of each written file are exactly the schema its feature view declares."""
    from feast.types import Float64, Int64, String

    settings = Settings(home=tmp_path / "home")
    paths = build.build_feature_tables(write_batch(tiny_tables(), tmp_path / "batch"), settings)
    assert set(paths) == set(build.FEATURE_TABLES)
    views = {o.name: o for o in store.definitions(settings) if type(o).__name__ == "FeatureView"}
    # Real-time views (a push source) have no feature file: pushes write them online only.
    realtime = {name for name, v in views.items() if v.stream_source is not None}
    assert realtime == {"customer_cart"}
    views = {name: v for name, v in views.items() if name not in realtime}
    assert set(views) == set(build.FEATURE_TABLES)
    numpy_kind = {Float64: "float64", Int64: "int64", String: "object"}
    for name, path in paths.items():
        frame = pd.read_parquet(path)
        view = views[name]
        keys = [f.name for f in view.entity_columns]
        declared = {f.name: numpy_kind[f.dtype] for f in view.features}
        assert list(frame.columns) == [*keys, "event_timestamp", *declared, "created_timestamp"]
        assert {c: str(frame[c].dtype) for c in declared} == declared
        assert frame[list(declared)].notna().all().all(), f"{name} has nulls"
        # Relative: Feast joins it with the snapshot folder each store reads (features_root).
        assert view.batch_source.path == path.name and store.features_root(settings) / path.name == path


def test_rebuild_is_deterministic_and_failed_run_keeps_last_good_files(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    batch = write_batch(tiny_tables(), tmp_path / "batch")
    first = {n: p.read_bytes() for n, p in build.build_feature_tables(batch, settings).items()}
    assert {n: p.read_bytes() for n, p in build.build_feature_tables(batch, settings).items()} == first

    other = write_batch(with_order(tiny_tables(), "c2", "2024-02-10", 99.0), tmp_path / "other")
    calls = []
    real = pd.DataFrame.to_parquet

    def fail_on_third(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        build.build_feature_tables(other, settings)
    assert {p.name: p.read_bytes() for p in settings.features_dir.iterdir()} == {f"{n}.parquet": b for n, b in first.items()}


# ---------------------------------------------------------------- Feast


def test_point_in_time_join_never_sees_data_after_the_label_time(tmp_path):
    """A label row at T gets the newest snapshot at or before T: an order after T changes nothing, one before does."""
    label_time = "2024-02-24 12:00"  # newest snapshot at or before it: 2024-02-22
    entity_df = pd.DataFrame({"customer_id": ["c2", "c1", "c2"],
                              "event_timestamp": [ts(label_time), ts(label_time), ts("2024-02-29")],
                              "churned": [1, 0, 1]})
    frames = {}
    for name, tables in {
        "base": tiny_tables(),
        "after": with_order(tiny_tables(), "c2", "2024-02-26 09:00", 50.0),  # after T
        "between": with_order(tiny_tables(), "c2", "2024-02-23 09:00", 50.0),  # after the snapshot, before T
        "before": with_order(tiny_tables(), "c2", "2024-02-10 09:00", 50.0),  # before the snapshot
    }.items():
        frames[name] = store.training_frame(built_home(tmp_path, name, tables), entity_df, "churn_v1")

    base = frames["base"]
    assert list(base.columns) == ["customer_id", "event_timestamp", "churned", *CHURN_FEATURES]
    assert base["customer_id"].tolist() == ["c2", "c1", "c2"] and base["churned"].tolist() == [1, 0, 1]
    assert base[CHURN_FEATURES].notna().all().all()
    assert base.loc[1, "recency_days"] == pytest.approx(1.5)  # c1 at T: the 02-22 snapshot, not 02-29's 8.5

    for leaky in ("after", "between"):
        pd.testing.assert_frame_equal(frames[leaky].iloc[:2], base.iloc[:2])  # rows at T: identical
        # ... while the same order is visible to the later row, so the comparison above is not vacuous.
        assert frames[leaky].loc[2, "frequency_90d"] == base.loc[2, "frequency_90d"] + 1
    before = frames["before"]
    assert before.loc[0, "frequency_90d"] == base.loc[0, "frequency_90d"] + 1
    assert before.loc[0, "monetary_90d"] == pytest.approx(base.loc[0, "monetary_90d"] + 50.0)
    pd.testing.assert_frame_equal(before.iloc[[1]], base.iloc[[1]])  # c1 is untouched


def test_training_frame_is_null_outside_ttl(tmp_path):
    settings = built_home(tmp_path, "home", tiny_tables())
    entity_df = pd.DataFrame({"customer_id": ["c1", "c1", "zz"],
                              "event_timestamp": [ts("2023-12-01"), ts("2024-06-01"), ts("2024-02-29")]})
    frame = store.training_frame(settings, entity_df, "churn_v1")
    assert frame[CHURN_FEATURES].isna().all().all()  # before any snapshot, > 14 days after the last, unknown id


def test_apply_materialize_online_round_trip_sqlite(tmp_path):
    settings = built_home(tmp_path, "home", tiny_tables())
    store.apply(settings)  # idempotent
    store.materialize(settings)
    store.materialize(settings)  # idempotent
    assert store.feature_names(settings, "churn_v1") == CHURN_FEATURES

    online = store.online_features(settings, ["c3", "nope", "c1"], "churn_v1")
    assert online.columns.tolist() == ["customer_id", *CHURN_FEATURES]
    assert online["customer_id"].tolist() == ["c3", "nope", "c1"]
    assert online.loc[1, CHURN_FEATURES].isna().all()  # unknown id: every feature null
    latest = build.compute_feature_tables(tiny_tables())
    for i, cid in ((0, "c3"), (2, "c1")):
        for name in ("customer_rfm", "customer_activity", "customer_category_mix"):
            want = row(latest[name], cid, "2024-02-29")
            for feature in want.index.drop(["customer_id", "event_timestamp", "created_timestamp"]):
                assert online.loc[i, feature] == pytest.approx(want[feature]), (cid, feature)

    # An earlier cut-off serves the snapshot of that time.
    store.materialize(settings, pd.Timestamp("2024-02-23").to_pydatetime())
    assert store.online_features(settings, ["c1"], "churn_v1").loc[0, "recency_days"] == pytest.approx(1.5)


def test_apply_removes_views_no_longer_defined(tmp_path):
    from feast import FeatureService

    settings = built_home(tmp_path, "home", tiny_tables())
    fs = store.get_store(settings)
    fs.apply([FeatureService(name="gone_v1", features=[fs.get_feature_view("customer_rfm")])])
    assert "gone_v1" in {s.name for s in store.get_store(settings).list_feature_services()}
    store.apply(settings)
    defined = {d.name for d in store.definitions(settings) if isinstance(d, FeatureService)}
    assert "churn_v1" in defined and "gone_v1" not in defined
    assert {s.name for s in store.get_store(settings).list_feature_services()} == defined


def test_feast_cli_apply_uses_the_same_registry(tmp_path):
    """`feast apply` from feature_repo/ (feature_store.yaml + env) registers what the library then reads."""
    settings = Settings(home=tmp_path / "home")
    build.build_feature_tables(write_batch(tiny_tables(), tmp_path / "batch"), settings)
    env = {**os.environ, **store.feast_env(settings)}
    proc = subprocess.run([str(FEAST), "apply"], cwd=store.FEATURE_REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (settings.feast_dir / store.REGISTRY_FILE).exists()
    assert store.feature_names(settings, "churn_v1") == CHURN_FEATURES
    view = store.get_store(settings).get_feature_view("customer_rfm")
    assert view.batch_source.path == build.feature_file("customer_rfm")
    assert not list(store.FEATURE_REPO.glob("$*")), "unexpanded ${VAR} path created inside feature_repo/"


def test_feature_store_yaml_matches_repo_config(tmp_path, monkeypatch):
    from feast.repo_config import load_repo_config

    settings = Settings(home=tmp_path / "home")
    for key, value in store.feast_env(settings).items():
        monkeypatch.setenv(key, value)
    from_yaml = load_repo_config(store.FEATURE_REPO, store.FEATURE_REPO / "feature_store.yaml")
    from_code = store.repo_config(settings)
    assert from_yaml.project == from_code.project == store.PROJECT
    assert from_yaml.registry.path == from_code.registry.path
    assert from_yaml.online_store.path == from_code.online_store.path
    assert type(from_yaml.offline_store) is type(from_code.offline_store)


def test_production_config_without_services():
    from pipelines.settings import ProductionSettings

    settings = Settings(profile="production", production=ProductionSettings(
        postgres_uri="postgresql://u@db:5432/shopflow", redis_connection="cache:6380,db=2"))
    # Which snapshot to read is CURRENT's, which lives in object storage in production: named here instead.
    config = store.repo_config(settings, features=settings.features_dir / "b1-0123abcd")
    assert config.offline_store.type == "postgres"
    assert (config.offline_store.host, config.offline_store.database) == ("db", "shopflow")
    assert config.offline_store.db_schema.startswith("fs_b1_0123abcd_")
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://u@db:5432/shopflow"
    assert config.online_store.type == "redis" and config.online_store.connection_string == "cache:6380,db=2"
    explicit = settings.model_copy(update={"production": ProductionSettings(
        feast_registry_uri="postgresql+psycopg://r@reg/feast")})
    assert store.registry_uri(explicit) == "postgresql+psycopg://r@reg/feast"
