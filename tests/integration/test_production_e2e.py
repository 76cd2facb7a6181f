"""The production profile end to end on this machine, with every store a real server.

Airflow metadata, MLflow tracking + registry and Feast's registry and offline store on the local PostgreSQL
(127.0.0.1:5432); Feast's online store on the local Redis (127.0.0.1:6379); MLflow artifacts and the home's durable
files on an S3 endpoint (``moto_server`` on localhost, configured by ``SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL``).
Each module run gets throwaway databases, a Redis database and a bucket, removed afterwards; with ``CI=true`` a
missing service fails the tests instead of skipping them.

1. ``SHOPFLOW_PROFILE=production shopflow run --customers 500`` completes (issue 10, item 3).
2. Every task of a production run, each with its own empty ``SHOPFLOW_HOME`` as separate pods would have (item 4).
3. LTV and forecasting served by ``shopflow serve`` from an empty ``SHOPFLOW_HOME`` (item 5).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import moto_s3, require_service

pytestmark = [pytest.mark.production, pytest.mark.integration]

BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "test-key-not-secret"
CUSTOMERS = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg(sql: str, database: str = "postgres") -> list:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def _empty_redis_db():
    """A Redis database (1-15) holding no keys, claimed for this module; ``None`` if all are in use."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0:
            client.set("shopflow:test:claimed", "1")  # claimed: a concurrent test module picks another one
            return db, client
    return None, None


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Environment of the production profile on throwaway stores; everything is removed afterwards."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    import boto3

    root = tmp_path_factory.mktemp("production")
    name = f"shopflow_e2e_{uuid.uuid4().hex[:10]}"
    moto = contextlib.ExitStack()
    endpoint = moto.enter_context(moto_s3(root / "moto.log"))
    db, redis_client = _empty_redis_db()
    created = []
    try:
        if db is None:
            pytest.fail("no empty Redis database (1-15) for the test")
        for database in (name, f"{name}_airflow"):
            _pg(f'CREATE DATABASE "{database}"')
            created.append(database)
        env = {
            "SHOPFLOW_PROFILE": "production",
            "SHOPFLOW_PRODUCTION__POSTGRES_URI": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "SHOPFLOW_PRODUCTION__REDIS_CONNECTION": f"127.0.0.1:6379,db={db}",
            "SHOPFLOW_PRODUCTION__ARTIFACT_URI": f"s3://{name.replace('_', '-')}/mlflow",
            "SHOPFLOW_PRODUCTION__DATA_URI": f"s3://{name.replace('_', '-')}/home",
            "SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "SHOPFLOW_API_KEY": KEY,
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket=name.replace("_", "-"))
        yield {"env": env, "root": root, "name": name, "bucket": name.replace("_", "-"), "s3": s3,
               "redis": redis_client}
    finally:
        if redis_client is not None:
            redis_client.flushdb()
            redis_client.close()
        for database in created:
            _pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        moto.close()  # the bucket lives in the server's memory only


def _run(stores, home: Path, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ, **stores["env"], SHOPFLOW_HOME=str(home))
    env.pop("SHOPFLOW_CUSTOMERS", None)
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)


def _keys(stores, prefix: str) -> list[str]:
    pages = stores["s3"].get_paginator("list_objects_v2").paginate(Bucket=stores["bucket"], Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_object_store_folders_are_fetched_only_when_complete(stores, tmp_path, monkeypatch):
    from pipelines import objectstore
    from pipelines.settings import Settings

    env = stores["env"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    s = Settings(home=tmp_path / "writer", profile="production", production={
        "postgres_uri": env["SHOPFLOW_PRODUCTION__POSTGRES_URI"], "s3_endpoint_url":
        env["SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL"], "data_uri": f"s3://{stores['bucket']}/unit"})
    folder = s.batches_dir / "b1"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    objectstore.push_dir(s, folder)
    reader = s.model_copy(update={"home": tmp_path / "reader"})
    assert objectstore.pull_dir(reader, reader.batches_dir / "b1")
    assert (reader.batches_dir / "b1" / "sub" / "b.txt").read_text() == "b"
    assert list(objectstore.list_dirs(reader, reader.batches_dir)) == ["b1"]
    # A folder whose upload never finished (no marker) does not exist for readers.
    stores["s3"].put_object(Bucket=stores["bucket"], Key="unit/data/batches/b2/a.txt", Body=b"half")
    assert not objectstore.pull_dir(reader, reader.batches_dir / "b2")
    assert not (reader.batches_dir / "b2").exists() and "b2" not in objectstore.list_dirs(reader, reader.batches_dir)
    # Pointers: the store's copy wins, and a pointer deleted there disappears here.
    s.current_pointer.parent.mkdir(parents=True, exist_ok=True)
    s.current_pointer.write_text("one\n")
    objectstore.push_file(s, s.current_pointer)
    objectstore.pull_file(reader, reader.current_pointer)
    assert reader.current_pointer.read_text() == "one\n"
    s.current_pointer.unlink()
    objectstore.push_file(s, s.current_pointer)
    objectstore.pull_file(reader, reader.current_pointer)
    assert not reader.current_pointer.exists()
    objectstore.delete_dir(s, folder)
    assert not objectstore.has_dir(s, folder) and not _keys(stores, "unit/data/batches/b1/")


@pytest.fixture(scope="module")
def production_run(stores):
    """``SHOPFLOW_PROFILE=production shopflow run --customers 500`` on the throwaway stores (timed)."""
    home = stores["root"] / "run-home"
    t0 = time.perf_counter()
    proc = _run(stores, home, str(BIN / "shopflow"), "run", "--customers", str(CUSTOMERS))
    seconds = time.perf_counter() - t0
    (stores["root"] / "run.out").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"shopflow run failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    print(f"production shopflow run --customers {CUSTOMERS}: {seconds:.0f}s")
    return {"home": home, "stdout": proc.stdout, "seconds": seconds}


def test_shopflow_run_completes_on_the_production_stores(stores, production_run):
    import mlflow

    from pipelines.registry import load_registry

    name = stores["name"]
    uri = stores["env"]["SHOPFLOW_PRODUCTION__POSTGRES_URI"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in load_registry():
        # The newest version (the gate decides which become champion; its tags say why).
        latest = client.get_model_version_by_alias(model, "challenger")
        assert latest.tags["shopflow.gate"] in ("promoted", "not promoted"), latest.tags
        # The registered artifacts are on the S3 endpoint, not on a local disk.
        run = client.get_run(latest.run_id)
        assert run.info.artifact_uri.startswith(f"s3://{stores['bucket']}/mlflow/{model}"), run.info.artifact_uri
    assert _keys(stores, "mlflow/")
    # Airflow's metadata: every DAG run of `shopflow run` succeeded, recorded in PostgreSQL.
    runs = dict(_pg("SELECT dag_id, state FROM dag_run", f"{name}_airflow"))
    assert runs.get("shopflow_data") == "success" and len(runs) == 1 + len(load_registry()), runs
    assert set(runs.values()) == {"success"}
    # Feast: registry tables and one offline-store schema holding the snapshot's feature tables.
    assert _pg("SELECT count(*) FROM feature_views", name)[0][0] >= 4
    schemas = [r[0] for r in _pg("SELECT schema_name FROM information_schema.schemata "
                                 "WHERE schema_name LIKE 'fs\\_%'", name)]
    assert len(schemas) == 1
    tables = {r[0]: r[1] for r in _pg("SELECT table_name, (xpath('/row/c/text()', query_to_xml("
                                      "format('select count(*) as c from %I.%I', table_schema, table_name), "
                                      "false, true, '')))[1]::text::int FROM information_schema.tables "
                                      f"WHERE table_schema = '{schemas[0]}'", name)}
    assert set(tables) >= {"customer_rfm", "customer_activity", "customer_category_mix", "product_sales"}
    assert tables["customer_rfm"] > CUSTOMERS / 2
    # The online store is this test's Redis database; the batch, its truth and CURRENT are in object storage.
    assert stores["redis"].dbsize() > CUSTOMERS
    current = json.loads(stores["s3"].get_object(Bucket=stores["bucket"], Key="home/data/CURRENT")["Body"].read())
    assert f"home/data/batches/{current['batch_id']}/.complete" in _keys(stores, "home/data/batches/")
    assert f"home/truth/{current['batch_id']}/.complete" in _keys(stores, "home/truth/")
    assert not _keys(stores, "home/landing/")  # accepted: nothing left in landing


STEP = """
import json, sys
from pipelines import steps
args = json.loads(sys.argv[1])
print("RESULT=" + json.dumps(getattr(steps, args.pop("step"))(**args), default=str))
"""


def test_every_task_runs_with_its_own_empty_home(stores):
    """A new batch through every task of the data pipeline and of LTV's training, each in a new process with an
    empty scratch home (what the KubernetesExecutor's pods and KFP's components have). After the `shopflow run`
    above it is the second batch (compared with the first, fetched by id); run alone, the first."""
    import mlflow

    def task(step: str, **kwargs):
        home = stores["root"] / f"pod-{step}-{uuid.uuid4().hex[:6]}"
        proc = _run(stores, home, sys.executable, "-c", STEP, json.dumps({"step": step, **kwargs}))
        assert proc.returncode == 0, f"{step} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
        return json.loads(line.removeprefix("RESULT="))

    # A new landing batch, generated and staged from yet another scratch home (the CLI's).
    gen = _run(stores, stores["root"] / "pod-generate", str(BIN / "shopflow"), "data", "generate",
               "--customers", str(CUSTOMERS), "--seed", "7")
    assert gen.returncode == 0, gen.stdout + gen.stderr
    report = task("validate")
    batch = report["batch_id"]
    assert report["success"] and f"home/landing/{batch}/.complete" not in _keys(stores, "home/landing/")
    snapshot = task("build_features", batch_id=batch)
    task("apply_features")
    task("materialize", batch_id=batch, snapshot_id=snapshot)
    current = task("publish", batch_id=batch, snapshot_id=snapshot)
    assert (current["batch_id"], current["snapshot_id"]) == (batch, snapshot)
    uri = stores["env"]["SHOPFLOW_PRODUCTION__POSTGRES_URI"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in ("ltv",):
        trained = task("train", model=model)
        assert trained["data_snapshot"] == batch and not trained["reused"]
        decided = task("gate", model=model, version=trained["version"])
        assert decided["gate"]["challenger_version"] == trained["version"]
        mv = client.get_model_version(model, trained["version"])
        assert mv.tags["shopflow.feature_snapshot"] == snapshot and mv.tags["shopflow.gate"]


def _serve(stores, model: str, home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, **stores["env"], SHOPFLOW_HOME=str(home), SHOPFLOW_SERVING__WORKERS="1")
    log = open(stores["root"] / f"serve-{model}.log", "w")
    proc = subprocess.Popen([str(BIN / "shopflow"), "serve", model, "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def test_ltv_and_forecasting_serve_from_an_empty_home(stores, production_run):
    """The servers read the model and its logged inputs from the registry, features from Redis: nothing local."""
    from pipelines.data.io import read_table

    home = stores["root"] / "serving-home"
    home.mkdir()
    import mlflow

    uri = stores["env"]["SHOPFLOW_PRODUCTION__POSTGRES_URI"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in ("ltv", "forecasting"):
        if "champion" not in client.get_registered_model(model).aliases:
            # This test is about where servers read from: a version the gate kept out is promoted, recorded.
            proc = _run(stores, stores["root"] / "promote-home", str(BIN / "shopflow"), "promote", model, "1",
                        "--reason", "serving-from-the-stores test")
            assert proc.returncode == 0, proc.stdout + proc.stderr
    servers = {m: _serve(stores, m, home) for m in ("ltv", "forecasting")}
    # Request ids straight from the batch in object storage (the test's view, not the servers').
    current = json.loads(stores["s3"].get_object(Bucket=stores["bucket"], Key="home/data/CURRENT")["Body"].read())
    batch = stores["root"] / "batch"
    for key in _keys(stores, f"home/data/batches/{current['batch_id']}/"):
        if key.endswith(".parquet"):
            target = batch / key.rsplit("/", 1)[1]
            batch.mkdir(exist_ok=True)
            stores["s3"].download_file(stores["bucket"], key, str(target))
    customers = list(dict.fromkeys(read_table(batch, "orders")["customer_id"].astype(str)))[:3]
    product = str(read_table(batch, "daily_sales")["product_id"].iloc[0])
    try:
        deadline = time.time() + 300
        for model, (proc, url) in servers.items():
            while True:
                assert proc.poll() is None, (stores["root"] / f"serve-{model}.log").read_text()[-4000:]
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.time() < deadline, (stores["root"] / f"serve-{model}.log").read_text()[-4000:]
                time.sleep(1)
        headers = {"Authorization": f"Bearer {KEY}"}
        ltv = httpx.post(f"{servers['ltv'][1]}/predict", json={"customer_ids": customers}, headers=headers,
                         timeout=60)
        assert ltv.status_code == 200, ltv.text
        body = ltv.json()
        assert [p["customer_id"] for p in body["predictions"]] == customers
        assert all(p["expected_spend"] >= 0 for p in body["predictions"])
        forecast = httpx.post(f"{servers['forecasting'][1]}/forecast", json={"product_id": product, "horizon": 7},
                              headers=headers, timeout=60)
        assert forecast.status_code == 200, forecast.text
        points = forecast.json()["forecast"]
        assert len(points) == 7 and all(0 <= p["p10"] <= p["p50"] <= p["p90"] for p in points)
    finally:
        for proc, _ in servers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc, _ in servers.values():
            proc.wait(timeout=60)
    # Nothing of a batch, a snapshot or a pointer was needed on the servers' disk.
    assert not (home / "data" / "batches").exists() and not (home / "features").exists()
