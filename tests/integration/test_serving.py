"""Every family's Bento served for real on localhost (one shared service pattern), called over HTTP.

The services are started from the registry; each test loops over the served families with their own example
requests (``ServingSpec.example``), so a seventh family is covered with no edit here.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from model_serving.bentofiles import served_models
from pipelines.registry import get_spec

pytestmark = pytest.mark.integration

KEY = "test-key-not-secret"
MODELS = served_models()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def servers(pipeline_home):
    """All families served at once (started together: model loading overlaps).

    BentoML's process manager (circus) picks free local ports for its own sockets; when several servers start at
    the same moment two can pick the same one, so a server that dies with "Address already in use" is restarted.
    """
    env = dict(os.environ, SHOPFLOW_HOME=str(pipeline_home), SHOPFLOW_API_KEY=KEY)
    procs, urls, attempts = {}, {}, dict.fromkeys(MODELS, 0)

    def start(model: str) -> None:
        port = _free_port()
        log = open(pipeline_home / f"serve-{model}.log", "w")
        procs[model] = subprocess.Popen([str(Path(sys.executable).parent / "shopflow"), "serve", model, "--port",
                                         str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        urls[model] = f"http://127.0.0.1:{port}"
        attempts[model] += 1

    for model in MODELS:
        start(model)
    deadline = time.time() + 300
    pending = set(MODELS)
    try:
        while pending and time.time() < deadline:
            for model in list(pending):
                if procs[model].poll() is not None:
                    log = (pipeline_home / f"serve-{model}.log").read_text()
                    if "Address already in use" in log and attempts[model] < 4:
                        start(model)
                        continue
                    raise AssertionError(f"{model} server died:\n{log[-3000:]}")
                try:
                    if httpx.get(f"{urls[model]}/readyz", timeout=2).status_code == 200:
                        pending.discard(model)
                except httpx.HTTPError:
                    pass
            time.sleep(1)
        assert not pending, f"not ready: {pending}:\n" + "\n".join(
            (pipeline_home / f"serve-{m}.log").read_text()[-2000:] for m in pending)
        yield urls
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs.values():
            proc.wait(timeout=30)


def _post(url, route, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}{route}", json=body, headers=headers, timeout=60, **kw)


def _route(model: str) -> str:
    return get_spec(model).serving.route


def _example(model: str, settings) -> dict:
    return get_spec(model).serving.example(settings)


@pytest.mark.parametrize("model", MODELS)
def test_answers_typed_json_with_version_and_arm(servers, model, pipeline_settings):
    serving = get_spec(model).serving
    r = _post(servers[model], serving.route, _example(model, pipeline_settings))
    assert r.status_code == 200, r.text
    body = serving.response.model_validate(r.json())  # the response schema holds
    assert body.model == model and body.model_version == "1" and body.arm == "champion"


def test_churn_and_ltv_values(servers, pipeline_settings):
    body = _post(servers["churn"], "/predict", _example("churn", pipeline_settings)).json()
    ids = _example("churn", pipeline_settings)["customer_ids"]
    assert [p["customer_id"] for p in body["predictions"]] == ids
    assert all(0 <= p["churn_probability"] <= 1 and p["arm"] == "champion" for p in body["predictions"])
    body = _post(servers["ltv"], "/predict", {"customer_ids": ids}).json()
    assert [p["customer_id"] for p in body["predictions"]] == ids
    assert all(p["expected_spend"] >= 0 for p in body["predictions"]) and body["horizon_days"] > 0


def test_recommendation_excludes_and_falls_back(servers, pipeline_settings):
    from pipelines.data.io import read_table

    example = _example("recommendation", pipeline_settings)
    orders = read_table(pipeline_settings.current_batch_dir(), "orders")
    top = _post(servers["recommendation"], "/recommend", {**example, "k": 10}).json()["recommendations"]
    assert len(top) == 10 and top[0]["source"] == "personal"
    again = _post(servers["recommendation"], "/recommend",
                  {**example, "k": 10, "exclude": [top[0]["product_id"]]}).json()["recommendations"]
    assert top[0]["product_id"] not in {r["product_id"] for r in again}
    new = _post(servers["recommendation"], "/recommend", {"customer_id": "C_NEW", "k": 5}).json()
    assert [r["source"] for r in new["recommendations"]] == ["popular"] * 5
    assert len(orders) > 0


def test_pricing_stays_in_guardrails_for_any_context(servers, pipeline_settings):
    pid = _example("pricing", pipeline_settings)["product_id"]
    for ctx in ({}, {"inventory": 0}, {"inventory": 1e6}, {"last_price": 0.01}, {"last_price": 1e6},
                {"date": "2026-12-24"}):
        b = _post(servers["pricing"], "/predict", {"product_id": pid, **ctx}).json()
        assert b["floor"] - 1e-6 <= b["price"] <= b["ceiling"] + 1e-6, (ctx, b)


def test_forecast_horizon_and_non_negative(servers, pipeline_settings):
    ex = _example("forecasting", pipeline_settings)
    b = _post(servers["forecasting"], "/forecast", {**ex, "horizon": 14}).json()
    assert len(b["forecast"]) == 14
    assert all(0 <= p["p10"] <= p["p50"] <= p["p90"] for p in b["forecast"])
    cheap = _post(servers["forecasting"], "/forecast", {**ex, "horizon": 14, "price_plan": [0.5] * 14}).json()
    assert sum(p["p50"] for p in cheap["forecast"]) >= sum(p["p50"] for p in b["forecast"])
    r = _post(servers["forecasting"], "/forecast", {**ex, "horizon": 300})
    assert r.status_code == 400 and "horizon" in r.text


def _png(size=(48, 40), mode="RGB") -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_vision_by_image_and_product_and_upload(servers, pipeline_settings):
    url = servers["vision"]
    by_id = _post(url, "/similar", _example("vision", pipeline_settings)).json()
    assert len(by_id["similar"]) == 5 and by_id["query"] not in {s["product_id"] for s in by_id["similar"]}
    for mode, size in (("RGB", (48, 40)), ("L", (20, 64))):
        b = _post(url, "/similar", {"image_base64": _png(size, mode), "k": 3}).json()
        assert len(b["similar"]) == 3 and b["query"] == "image"
    up = httpx.post(f"{url}/similar/upload", files={"image": ("x.png", base64.b64decode(_png()), "image/png")},
                    data={"k": "4"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert up.status_code == 200, up.text
    assert len(up.json()["similar"]) == 4


@pytest.mark.parametrize("model", MODELS)
def test_auth_required_but_health_open(servers, model, pipeline_settings):
    ex = _example(model, pipeline_settings)
    assert _post(servers[model], _route(model), ex, key=None).status_code == 401
    assert _post(servers[model], _route(model), ex, key="wrong").status_code == 401
    assert _post(servers[model], "/feedback", {"unit_id": "C1", "kind": "click"}, key=None).status_code == 401
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(servers[model] + path, timeout=10).status_code == 200


def _bad_bodies(model: str, example: dict) -> list[tuple[dict, str]]:
    """Wrong type, missing field and out-of-range value for each field of the family's example."""
    fields = get_spec(model).serving.request.model_fields
    out = []
    for name, value in example.items():
        out.append(({**example, name: {"not": "valid"}}, name))
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(({**example, name: -5}, name))
        if fields[name].is_required():
            out.append(({k: v for k, v in example.items() if k != name}, name))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_bad_requests_are_4xx_naming_the_field(servers, model, pipeline_settings):
    url, route = servers[model], _route(model)
    for body, name in _bad_bodies(model, _example(model, pipeline_settings)):
        r = _post(url, route, body)
        assert 400 <= r.status_code < 500 and name in r.text and "Traceback" not in r.text, (body, r.text)
    r = httpx.post(f"{url}{route}", content=b"{not json", timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400 and "Traceback" not in r.text


@pytest.mark.parametrize("model", MODELS)
def test_unknown_ids_are_404_or_a_documented_fallback(servers, model):
    serving = get_spec(model).serving
    r = _post(servers[model], serving.route, serving.unknown)
    if model == "recommendation":
        assert r.status_code == 200 and {x["source"] for x in r.json()["recommendations"]} == {"popular"}
    else:
        field = next(iter(serving.unknown))
        assert r.status_code == 404 and field in r.text and "DOES_NOT_EXIST" in r.text, r.text


def test_oversized_batches_and_broken_images(servers, pipeline_settings):
    r = _post(servers["churn"], "/predict", {"customer_ids": [f"C{i}" for i in range(1001)]})
    assert r.status_code == 413 and "customer_ids" in r.text
    r = _post(servers["churn"], "/predict", {"customer_ids": [f"C{i}" for i in range(10_001)]})
    assert r.status_code == 400 and "customer_ids" in r.text
    for bad in ("!!!not base64!!!", base64.b64encode(b"GIF89a not really an image").decode()):
        r = _post(servers["vision"], "/similar", {"image_base64": bad})
        assert r.status_code == 400 and "image_base64" in r.text, r.text
    r = _post(servers["vision"], "/similar", {"k": 3})
    assert r.status_code == 400 and "product_id" in r.text
    up = httpx.post(f"{servers['vision']}/similar/upload", files={"image": ("x.png", b"broken", "image/png")},
                    headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert up.status_code == 400 and "image" in up.text


def test_openapi_is_complete_and_valid(servers):
    from openapi_spec_validator import validate

    for model in MODELS:
        spec = httpx.get(servers[model] + "/docs.json", timeout=30).json()
        validate(spec)
        paths = spec["paths"]
        assert _route(model) in paths and "/feedback" in paths and "/readyz" in paths, sorted(paths)


def test_prometheus_metrics_carry_model_version_and_arm(servers, pipeline_settings):
    _post(servers["churn"], "/predict", _example("churn", pipeline_settings))
    text = httpx.get(servers["churn"] + "/metrics", timeout=30).text
    assert 'shopflow_requests_total{arm="champion",model="churn",model_version="1",status="200"}' in text
    assert "shopflow_request_latency_seconds_bucket" in text
    assert 'shopflow_model_version_info{arm="champion",model="churn",model_version="1"' in text


@pytest.mark.parametrize("model", ["churn", "vision"])
def test_bentoml_build_packs_the_service(tmp_path, model):
    """`bentoml build` succeeds offline from the generated bentofile and packs the library and feature repo."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, BENTOML_HOME=str(tmp_path / "bentoml"), SHOPFLOW_HOME=str(tmp_path / "home"))
    proc = subprocess.run([str(Path(sys.executable).parent / "shopflow"), "build", model], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (bento,) = (tmp_path / "bentoml" / "bentos" / f"shopflow-{model}").glob("*/")
    src = bento / "src"
    for rel in ("model_serving/service.py", f"pipelines/models/{model}.py", "feature_repo/services.py",
                "feature_repo/feature_store.yaml"):
        assert (src / rel).exists(), rel
    assert not (src / "tests").exists() and not (src / ".shopflow").exists()


def test_ab_rollout_over_http_is_sticky_logged_and_reversible(servers, pipeline_home, pipeline_settings):
    """A second churn version becomes challenger; a running experiment splits traffic per customer, stickily,
    logs every assignment durably, records feedback, and a rollback sends everyone back to the champion."""
    import json

    from pipelines.data.io import read_table
    from tests.conftest import shopflow

    from pipelines import tracking

    shopflow(pipeline_home, "train", "churn", "--force", "--set", "n_estimators=60", SHOPFLOW_PROMOTION="ab")
    state = tracking.registry_state(tracking.configure(pipeline_settings), "churn")
    assert state["champion"] == "1" and state["challenger"] not in (None, "1"), state
    versions = {"champion": "1", "challenger": state["challenger"]}
    shopflow(pipeline_home, "rollout", "start", "churn", "--reason", "test", SHOPFLOW_ROLLOUT__RAMP="[0.5]")
    time.sleep(2.5)  # the services re-read the rollout state every 2 s
    ids = read_table(pipeline_settings.current_batch_dir(), "orders")["customer_id"].astype(str).unique()[:120]
    ids = list(ids)
    seen = {}
    for rnd in range(2):
        for chunk in (ids[:60], ids[60:]):
            body = _post(servers["churn"], "/predict", {"customer_ids": chunk}).json()
            assert body["experiment_id"] and body["arm"] in {"mixed", "champion", "challenger"}
            for p in body["predictions"]:
                assert p["model_version"] == versions[p["arm"]]
                assert seen.setdefault(p["customer_id"], p["arm"]) == p["arm"]  # sticky across requests
    arms = list(seen.values())
    assert 20 < arms.count("challenger") < 100, arms.count("challenger")  # ~50% of 120
    fb = _post(servers["churn"], "/feedback", {"unit_id": ids[0], "kind": "purchase"}).json()
    assert fb["recorded"] is True and fb["experiment_id"] == body["experiment_id"]
    status = json.loads(shopflow(pipeline_home, "rollout", "status", "churn", "--json").stdout)
    assert json.dumps(status).count("challenger") > 0
    text = httpx.get(servers["churn"] + "/metrics", timeout=30).text
    assert f'arm="challenger",model="churn",model_version="{versions["challenger"]}"' in text
    shopflow(pipeline_home, "rollout", "rollback", "churn", "--reason", "test over")
    time.sleep(2.5)
    body = _post(servers["churn"], "/predict", {"customer_ids": ids[:60]}).json()
    assert body["arm"] == "champion" and body["model_version"] == "1" and body["experiment_id"] is None
