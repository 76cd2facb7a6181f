"""Bring your own data: each model family trains on a small hand-written data set of its kind, without truth.

Each test takes one folder of ``tests/fixtures/byo/`` (the vision pictures are drawn here at several sizes and
modes), imports it with the real CLI (``shopflow data import --historical``: the fixtures are dated in the past),
gates it with Great Expectations, builds, materialises and switches in its Feast features and trains the family with
small param overrides. The report row must then say ``oracle: None``: imported data has no hidden truth.
All tests share one ShopFlow home (MLflow store, Feast registry); each ingests its own batch first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines import tracking
from pipelines.data.kinds import MissingDataError
from pipelines.features.snapshot import current_batch_dir
from pipelines.publish import use
from pipelines.settings import PROJECT_ROOT, Settings, ValidationSettings
from pipelines.training import run_summary, train_model
from pipelines.validation.gate import gate
from tests.conftest import shopflow

pytestmark = pytest.mark.integration

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "byo"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("byo") / "home"


def ingest(home: Path, src: Path) -> tuple[Settings, str]:
    """Import -> gate -> features (build aside, apply, materialise, switch); returns the settings and the import's
    and the gate's messages.

    The fixtures are unrelated shops ingested into one home, one after the other: exactly the deliberate break the
    comparison with the last accepted batch would (rightly) reject, so it is switched off here.
    """
    out = shopflow(home, "data", "import", str(src), "--historical").stdout
    batch_id = re.search(r"imported batch (\w+)", out).group(1)
    settings = Settings(home=home)
    report = gate(batch_id, Settings(home=home, validation=ValidationSettings(compare=False)))
    assert report.success, report.summary()
    use(settings, batch_id, reason=f"bring-your-own fixture {src.name}")  # must not crash on missing tables
    assert current_batch_dir(settings).name == batch_id
    return settings, out + "\n".join(report.notes)


def check_trained(settings: Settings, family: str, overrides: dict) -> dict:
    """Train ``family`` on CURRENT and check the registered version, its metrics and the oracle-free report."""
    summary = train_model(family, settings, overrides, force=True)
    assert summary["oracle"] is None
    assert np.isfinite(summary["value"]) and summary["baselines"]
    client = tracking.configure(settings)
    run = client.get_run(summary["run_id"])
    assert summary["metric"] in run.data.metrics and f"oracle_{summary['metric']}" not in run.data.metrics
    assert run.data.tags["shopflow.truth"] == "none"
    assert client.get_model_version(family, summary["version"]).run_id == summary["run_id"]
    row = run_summary(settings, family)
    assert row["oracle"] is None and row["version"] == summary["version"]
    return summary


def test_recommendation_from_ratings_only(home):
    settings, out = ingest(home, FIXTURES / "ratings")
    assert "recommendation: yes" in out and "churn: no (missing table customers)" in out
    summary = check_trained(settings, "recommendation", {"epochs": 5, "dim": 4})
    assert 0.0 <= summary["value"] <= 1.0
    # A family whose tables are absent says so instead of crashing somewhere inside.
    with pytest.raises(MissingDataError, match="missing table customers"):
        train_model("churn", settings, {}, force=True)
    proc = shopflow(home, "train", "ltv", check=False)
    assert proc.returncode == 1 and "missing table orders" in proc.stdout and "Traceback" not in proc.stderr


def test_recommendation_from_events_only(home):
    settings, out = ingest(home, FIXTURES / "events")
    assert "recommendation: yes" in out
    check_trained(settings, "recommendation", {"epochs": 5, "dim": 4})


def test_churn_from_labelled_customers_and_orders(home):
    settings, out = ingest(home, FIXTURES / "churn")
    assert "churn: yes" in out and "ltv: yes" in out
    # Few rows: min_child_weight=1 lets the trees split at all (the default 5 needs ~25 rows per leaf).
    summary = check_trained(settings, "churn", {"n_estimators": 20, "min_child_weight": 1})
    # The provided label was used: one row per labelled customer, split into train and holdout.
    client = tracking.configure(settings)
    metrics = client.get_run(summary["run_id"]).data.metrics
    assert metrics["train_rows"] + metrics["holdout_rows"] == 60
    assert summary["value"] > 0.7  # churned customers stopped buying months before: easy to tell apart


def test_ltv_from_a_bare_transaction_log(home):
    settings, out = ingest(home, FIXTURES / "ltv")
    assert "ltv: yes" in out and "churn: no (missing table customers)" in out
    check_trained(settings, "ltv", {"horizon_days": 28, "n_train_cutoffs": 2, "min_history_days": 14,
                                    "n_estimators": 20})


@pytest.mark.parametrize(("kind", "frequency", "horizon"), [("weekly", "weekly", 8), ("monthly", "monthly", 6)])
def test_forecasting_from_weekly_and_monthly_series(home, kind, frequency, horizon):
    settings, out = ingest(home, FIXTURES / kind)
    assert "forecasting: yes" in out and f"daily_sales is {frequency}" in out
    summary = check_trained(settings, "forecasting", {"n_origins": 1, "steps": 30})
    params = tracking.configure(settings).get_run(summary["run_id"]).data.params
    assert params["frequency"] == frequency and int(params["horizon_steps"]) == horizon


def test_pricing_from_a_price_units_history(home):
    settings, out = ingest(home, FIXTURES / "pricing")
    assert "pricing: yes" in out and "forecasting: yes" in out
    check_trained(settings, "pricing", {"eval_days": 14, "episode_days": 7, "eval_seeds": 1, "train_steps": 40,
                                        "parallel_episodes": 16, "batch_size": 16, "val_every": 20})


def _draw(category: str, i: int, size: tuple[int, int], mode: str) -> Image.Image:
    """A red disc (``discs``) or a blue bar (``bars``) on white, at any size and mode."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    if category == "discs":
        draw.ellipse([w * 0.2, h * 0.2, w * 0.8, h * 0.8], fill=(200 + i, 30, 30))
    else:
        draw.rectangle([w * 0.1, h * 0.4, w * 0.9, h * 0.6], fill=(30, 30, 200 + i))
    return img.convert(mode)


def test_vision_from_labelled_images_of_mixed_sizes_and_modes(home, tmp_path):
    shapes = [((32, 32), "RGB"), ((48, 40), "L"), ((64, 64), "RGBA"), ((20, 28), "RGB"), ((40, 40), "P"),
              ((56, 30), "L")]
    for category in ("discs", "bars"):
        folder = tmp_path / "pictures" / "images" / category
        folder.mkdir(parents=True)
        for i, (size, mode) in enumerate(shapes):
            _draw(category, i, size, mode).save(folder / f"{category}{i}.{'jpg' if mode == 'RGB' and i else 'png'}")
    settings, out = ingest(home, tmp_path / "pictures")
    assert "vision: yes" in out and "pricing: no (missing table daily_sales)" in out
    summary = check_trained(settings, "vision", {"epochs": 2, "samples_per_epoch": 64, "batch_size": 16})
    assert 0.0 <= summary["value"] <= 1.0


def test_report_json_says_oracle_null(home):
    trained = {name for name in ("recommendation", "churn", "ltv", "forecasting", "pricing", "vision")
               if run_summary(Settings(home=home), name)}
    if not trained:
        pytest.skip("run with the training tests of this module")
    rows = json.loads(shopflow(home, "report", "--json").stdout)
    assert set(rows) == trained
    assert all(row["oracle"] is None for row in rows.values())
