"""Production profile of the feature store, for real: SQL registry on PostgreSQL, online store on Redis.

Isolation: the registry lives in a throwaway database; Redis keys carry the Feast project as suffix, so a unique
project name keeps this test's keys apart from any real ``shopflow`` project, and only those keys are deleted.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from pipelines.features import build, store
from pipelines.settings import Settings
from tests.conftest import moto_s3, require_service

pytestmark = pytest.mark.production

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
FEATURES = [
    "recency_days", "frequency_90d", "monetary_90d", "frequency_365d", "monetary_365d", "avg_order_value",
    "tenure_days", "views_7d", "views_30d", "carts_30d", "purchases_30d", "active_days_30d", "cart_to_purchase_30d",
    "n_categories_90d", "top_category_share_90d",
]
OLD, NEW = pd.Timestamp("2024-05-01", tz="UTC"), pd.Timestamp("2024-05-08", tz="UTC")


@pytest.fixture
def registry_db():
    """A throwaway PostgreSQL database for the Feast registry, dropped afterwards."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    name = f"shopflow_feast_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """An S3 endpoint on localhost (``moto_server``) with an empty bucket, for the profile's pointers and files."""
    import boto3

    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    with moto_s3(tmp_path / "moto.log") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="feast-test")
        yield {"data_uri": "s3://feast-test/home", "s3_endpoint_url": endpoint}


@pytest.fixture
def project(monkeypatch):
    """A unique Feast project for this test; its Redis keys are deleted afterwards (and only those)."""
    require_service(REDIS_HOST, REDIS_PORT, "Redis")
    import redis

    name = f"shopflow_test_{uuid.uuid4().hex[:10]}"
    monkeypatch.setattr(store, "PROJECT", name)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    yield name
    ours = list(client.scan_iter(match=b"*" + name.encode()))
    if ours:
        client.delete(*ours)
    client.close()


def feature_frames() -> dict[str, pd.DataFrame]:
    """Hand-made feature tables: two snapshots per customer (the newer one must be served) and one product."""

    def snapshots(values_old: dict, values_new: dict) -> pd.DataFrame:
        frame = pd.DataFrame([{"customer_id": "c1", "event_timestamp": OLD, **values_old},
                              {"customer_id": "c1", "event_timestamp": NEW, **values_new},
                              {"customer_id": "c2", "event_timestamp": NEW, **values_old}])
        return frame.assign(created_timestamp=NEW)

    rfm = snapshots(
        dict(recency_days=9.5, frequency_90d=1, monetary_90d=10.0, frequency_365d=1, monetary_365d=10.0,
             avg_order_value=10.0, tenure_days=30.0),
        dict(recency_days=2.25, frequency_90d=4, monetary_90d=123.45, frequency_365d=7, monetary_365d=456.5,
             avg_order_value=65.2142, tenure_days=37.0),
    )
    activity = snapshots(
        dict(views_7d=0, views_30d=1, carts_30d=0, purchases_30d=0, active_days_30d=1, cart_to_purchase_30d=0.0),
        dict(views_7d=5, views_30d=12, carts_30d=4, purchases_30d=3, active_days_30d=6, cart_to_purchase_30d=0.75),
    )
    mix = snapshots(dict(n_categories_90d=1, top_category_share_90d=1.0),
                    dict(n_categories_90d=3, top_category_share_90d=0.5))
    products = pd.DataFrame({"product_id": ["p1"], "event_timestamp": [NEW], "price_7d_avg": [9.99], "units_7d": [14],
                             "units_28d": [60], "views_7d": [33], "created_timestamp": [NEW]})
    return {"customer_rfm": rfm, "customer_activity": activity, "customer_category_mix": mix,
            "product_sales": products}


def test_feast_on_postgres_registry_and_redis_online_store(registry_db, project, s3, tmp_path):
    import redis
    import sqlalchemy

    settings = Settings(home=tmp_path, profile="production",
                        production={"postgres_uri": registry_db, "redis_connection": f"{REDIS_HOST}:{REDIS_PORT}",
                                    **s3})
    frames = feature_frames()
    build.write_atomically(frames, settings.features_dir)
    # Nothing is CURRENT in this store: Feast's offline store reads the default schema (the data pipeline loads a
    # snapshot into its own schema instead, see pipelines.features.offline).
    engine = sqlalchemy.create_engine(registry_db.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False)
    engine.dispose()

    store.apply(settings)
    store.apply(settings)  # idempotent
    store.materialize(settings)
    store.materialize(settings)  # idempotent

    # The registry really is in the throwaway database, under this project.
    engine = sqlalchemy.create_engine(store.registry_uri(settings))
    with engine.connect() as conn:
        views = conn.execute(sqlalchemy.text("SELECT feature_view_name FROM feature_views WHERE project_id = :p"),
                             {"p": project}).scalars().all()
    engine.dispose()
    assert set(views) == {*build.FEATURE_TABLES, "customer_cart"}  # the batch views and the real-time cart

    # ... and the online values in Redis, under keys suffixed with this project.
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    assert len(list(client.scan_iter(match=b"*" + project.encode()))) == 3  # c1, c2, p1
    client.close()

    online = store.online_features(settings, ["c1", "unknown", "c2"], "churn_v1")
    assert online.columns.tolist() == ["customer_id", *FEATURES]
    assert online.loc[1, FEATURES].isna().all()
    newest = {cid: {} for cid in ("c1", "c2")}
    for name in ("customer_rfm", "customer_activity", "customer_category_mix"):
        for _, r in frames[name][frames[name]["event_timestamp"] == NEW].iterrows():
            newest[r["customer_id"]].update(r.drop(["customer_id", "event_timestamp", "created_timestamp"]).to_dict())
    for i, cid in ((0, "c1"), (2, "c2")):
        assert online.loc[i, FEATURES].to_dict() == pytest.approx(newest[cid]), cid

    # A fresh store (new process, same settings) reads the same registry; the offline path works too.
    assert store.feature_names(settings, "churn_v1") == FEATURES
    training = store.training_frame(
        settings, pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [OLD + pd.Timedelta(days=3)]}), "churn_v1")
    assert training.loc[0, "recency_days"] == pytest.approx(9.5)
    # Real-time cart events go through the same production store (PushSource -> Redis) and are read back at once.
    from pipelines.features.realtime import CartEvent, carts, push_cart_event

    live = store.get_store(settings)
    push_cart_event(live, CartEvent(customer_id="c1", product_id="p1", event_type="add_to_cart"))
    assert carts(live, ["c1", "c2"]) == {"c1": ["p1"], "c2": []}
