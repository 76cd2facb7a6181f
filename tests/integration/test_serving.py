"""The churn Bento served for real on localhost, called over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.data.io import read_table

pytestmark = pytest.mark.integration

KEY = "test-key-not-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(pipeline_home):
    port = _free_port()
    env = dict(os.environ, SHOPFLOW_HOME=str(pipeline_home), SHOPFLOW_API_KEY=KEY)
    log = open(pipeline_home / "serve-test.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "shopflow"), "serve", "churn", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError((pipeline_home / "serve-test.log").read_text()[-3000:])
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        raise AssertionError("server did not become ready:\n" + (pipeline_home / "serve-test.log").read_text()[-3000:])
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def _post(url, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/predict", json=body, headers=headers, timeout=30, **kw)


def test_predicts_for_known_customers(server, pipeline_settings):
    ids = read_table(pipeline_settings.current_batch_dir(), "customers")["customer_id"].tolist()[:3]
    r = _post(server, {"customer_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "1" and body["feature_service"] == "churn_v1"
    assert [p["customer_id"] for p in body["predictions"]] == ids
    assert all(0.0 <= p["churn_probability"] <= 1.0 for p in body["predictions"])


def test_auth_required(server):
    assert _post(server, {"customer_ids": ["C000001"]}, key=None).status_code == 401
    assert _post(server, {"customer_ids": ["C000001"]}, key="wrong").status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": [1, 2]}, "customer_ids"),
    ({"customer_ids": "C000001"}, "customer_ids"),
    ({}, "customer_ids"),
])
def test_bad_requests_are_400_naming_the_field(server, body, field):
    r = _post(server, body)
    assert r.status_code == 400 and field in r.text and "Traceback" not in r.text


def test_malformed_json_is_400(server):
    r = httpx.post(f"{server}/predict", content=b"{not json", timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400


def test_unknown_customer_is_404_naming_it(server):
    r = _post(server, {"customer_ids": ["C_DOES_NOT_EXIST"]})
    assert r.status_code == 404 and "C_DOES_NOT_EXIST" in r.text


def test_bentoml_build_packs_the_service(tmp_path):
    """`bentoml build` succeeds offline and the Bento carries the service, the library and the feature repo."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, BENTOML_HOME=str(tmp_path / "bentoml"), SHOPFLOW_HOME=str(tmp_path / "home"))
    proc = subprocess.run([str(Path(sys.executable).parent / "bentoml"), "build", "-f",
                           "model_serving/bentofile.churn.yaml", "."], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (bento,) = (tmp_path / "bentoml" / "bentos" / "shopflow-churn").glob("*/")
    src = bento / "src"
    for rel in ("model_serving/churn.py", "pipelines/models/churn.py", "feature_repo/services.py",
                "feature_repo/feature_store.yaml"):
        assert (src / rel).exists(), rel
    assert not (src / "tests").exists() and not (src / ".shopflow").exists()
