"""Run cards: recorded facts, rendering, and a server that exposes only cards, Data Docs and monitoring reports."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from pipelines.runcard.card import list_cards, record, render_card


@pytest.fixture
def server(settings):
    from pipelines.runcard.server import make_server

    srv = make_server(settings, 0, "http://127.0.0.1:8080", "http://127.0.0.1:5000")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_card_of_an_empty_home_says_what_is_missing(settings):
    path = record(settings)
    card = json.loads(path.read_text())
    assert card["batch"] is None and card["models"] == [] and card["monitoring"] is None
    html = render_card(card, "http://af", "http://ml")
    assert "No batch is current" in html and "No monitoring run yet" in html
    assert list_cards(settings)[0]["run_id"] == card["run_id"]


def test_server_serves_cards_docs_and_reports_only(settings, server):
    card = record(settings)
    docs = settings.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html"
    docs.parent.mkdir(parents=True)
    docs.write_text("<html>docs</html>")
    (settings.monitoring_dir / "reports").mkdir(parents=True)
    (settings.monitoring_dir / "reports" / "r1.html").write_text("<html>drift</html>")
    (settings.home / "api_key").write_text("secret")
    assert card.stem in httpx.get(server).text
    page = httpx.get(f"{server}/runs/{card.stem}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(f"{server}/gx/uncommitted/data_docs/local_site/index.html").text == "<html>docs</html>"
    assert httpx.get(f"{server}/monitoring/r1.html").text == "<html>drift</html>"
    assert httpx.get(f"{server}/runs/nope").status_code == 404
    for path in ("/api_key", "/gx/%2e%2e/api_key", "/monitoring/..%2f..%2fapi_key", "/gx/", "/mlflow.db"):
        response = httpx.get(f"{server}{path}")
        assert response.status_code == 404 and "secret" not in response.text, path
