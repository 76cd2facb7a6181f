"""The UIs in a real headless browser: Debian's chromium driven by Playwright (`executable_path`; `playwright
install` cannot download here). The Airflow DAG list, an MLflow model page, the GX Data Docs and the run card render
without errors; screenshots are kept under ``test-artifacts/browser/``.

"Without errors": no uncaught page exception, no console error, no HTTP error from the local servers. Requests to
other hosts are blocked, as on an offline CI runner, and ignored: GX Data Docs load jQuery, Bootstrap and Vega from
CDNs, so their inline scripts' "$ is not defined" (and the like, :data:`CDN_GLOBALS`) are the only page errors
tolerated; their content is static HTML and is checked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from pipelines.settings import PROJECT_ROOT
from tests.integration.test_serving import _free_port

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
LOCAL = ("127.0.0.1", "localhost")
EXPECTED_404 = ("/ajax-api/2.0/mlflow/users/current",)
"""The MLflow UI asks for the logged-in user of its optional basic-auth app; without that app the answer is 404
("no auth"), by design: not a rendering error."""
CDN_GLOBALS = ("$", "jQuery", "vegaEmbed", "bootstrapTable")
"""Globals of the CDN scripts Data Docs load; a page error about one of them comes from the blocked CDN."""


def _from_blocked_cdn(message: str) -> bool:
    return any(f"{name} is not defined" in message for name in CDN_GLOBALS) or ".bootstrapTable is not a function" \
        in message


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it with apt-get)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def ui(pipeline_home):
    """`shopflow ui` on free ports, with a run card recorded for the home; yields the three base URLs."""
    from pipelines.runcard.card import record
    from pipelines.settings import Settings

    card = record(Settings(home=pipeline_home))
    af, ml, cards = _free_port(), _free_port(), _free_port()
    env = dict(os.environ, SHOPFLOW_HOME=str(pipeline_home))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "shopflow"), "ui", "--airflow-port", str(af),
                             "--mlflow-port", str(ml), "--cards-port", str(cards)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    urls = {"airflow": f"http://127.0.0.1:{af}", "mlflow": f"http://127.0.0.1:{ml}",
            "cards": f"http://127.0.0.1:{cards}", "card": card.stem}
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{urls['airflow']}/api/v2/monitor/health", timeout=3).json()
                dags = httpx.get(f"{urls['airflow']}/api/v2/dags", timeout=5).json().get("dags", [])
                if (health.get("dag_processor", {}).get("status") == "healthy"
                        and "shopflow_monitor" in {d["dag_id"] for d in dags}
                        and httpx.get(f"{urls['mlflow']}/health", timeout=3).status_code == 200
                        and httpx.get(urls["cards"], timeout=3).status_code == 200):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        else:
            pytest.fail(f"`shopflow ui` not ready in 300 s (exit code {proc.poll()})")
        yield urls
    finally:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=15)
        for p in alive:
            p.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _visit(browser, url: str, name: str, expect: str, timeout_ms: int = 120_000):
    """Open ``url``, wait for ``expect`` (a text) to be visible, screenshot it; returns the problems seen."""
    from urllib.parse import urlsplit

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname in LOCAL
               or route.request.url.startswith(("data:", "blob:")) else route.abort())
    page.on("pageerror", lambda exc: None if _from_blocked_cdn(str(exc)) else problems.append(f"page error: {exc}"))
    def expected(address: str) -> bool:
        return urlsplit(address).path in EXPECTED_404

    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})")
            if msg.type == "error" and urlsplit(msg.location.get("url") or url).hostname in LOCAL
            and "net::ERR_FAILED" not in msg.text and not expected(msg.location.get("url") or "") else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 and urlsplit(r.url).hostname in LOCAL
            and not (r.status == 404 and expected(r.url)) else None)
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        page.get_by_text(expect, exact=False).first.wait_for(state="visible", timeout=timeout_ms)
        page.wait_for_timeout(2000)  # late script errors and failed requests (UIs keep polling: no network idle)
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    return page, problems


def test_airflow_dag_list_renders(ui, browser):
    page, problems = _visit(browser, f"{ui['airflow']}/dags", "airflow-dags", "shopflow_monitor")
    assert page.get_by_text("shopflow_data").first.is_visible()
    assert problems == [], problems


def test_mlflow_model_page_renders(ui, browser):
    page, problems = _visit(browser, f"{ui['mlflow']}/#/models/churn", "mlflow-model-churn", "Version 1")
    assert "churn" in page.content()
    assert problems == [], problems


def test_data_docs_render(ui, browser):
    page, problems = _visit(browser, f"{ui['cards']}/gx/uncommitted/data_docs/local_site/index.html",
                            "gx-data-docs", "Validation Results")
    assert problems == [], problems
    # A table's validation page, linked from the run card (its lists are static HTML).
    card = httpx.get(f"{ui['cards']}/runs/{ui['card']}", timeout=10).text
    link = card.split("Per table: <a href='", 1)[1].split("'", 1)[0]
    page, problems = _visit(browser, f"{ui['cards']}{link}", "gx-data-docs-table", "Expectation Validation Result")
    assert "Succeeded" in page.inner_text("body")
    assert problems == [], problems


def test_run_card_renders_and_links_everything(ui, browser):
    page, problems = _visit(browser, f"{ui['cards']}/runs/{ui['card']}", "run-card", "Models")
    assert problems == [], problems
    text = page.inner_text("body")
    assert "churn" in text and "best baseline" in text and "registry aliases and rollouts" in text
    docs = page.locator("#data-docs")
    assert docs.count() == 1
    href = docs.get_attribute("href")
    assert httpx.get(f"{ui['cards']}{href}", timeout=10).status_code == 200
    mlflow_links = [a.get_attribute("href") for a in page.locator("a").all()
                    if (a.get_attribute("href") or "").startswith(ui["mlflow"])]
    assert any("/#/models/churn/versions/" in h for h in mlflow_links), mlflow_links
    index, problems = _visit(browser, ui["cards"], "run-cards-index", ui["card"])
    assert problems == [], problems
    # Nothing else of the home is served: the databases and the API key stay private.
    for path in ("/gx/../mlflow.db", "/monitoring/../../api_key", "/mlflow.db"):
        assert httpx.get(f"{ui['cards']}{path}", timeout=5).status_code == 404
