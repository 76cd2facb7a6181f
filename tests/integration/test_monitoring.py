"""Monitoring end to end: a trained churn champion, served requests logged by the real serving runtime, then
`shopflow monitor` before and after a slow drift (the generator's drift knob) is accepted in two steps.

Each step passes the GX gate's comparison with the previous batch (x1.5, then x1.33); together they double the
customers' purchase rate and spend: the drift only a comparison with the champion's training reference sees."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SMALL_CUSTOMERS, shopflow

pytestmark = pytest.mark.integration

MODEL = "churn"


def _publish(settings, seed: int, drift: float = 0.0) -> str:
    """Generate a batch and take it through the data pipeline's steps (GX gate, features, Feast, switch)."""
    from pipelines import steps
    from pipelines.data.generator import generate

    batch = generate(settings.landing_dir, settings.truth_dir, customers=SMALL_CUSTOMERS, seed=seed, drift=drift)
    steps.validate(batch.batch_id, settings)
    snapshot = steps.build_features(batch.batch_id, settings)
    steps.apply_features(settings)
    steps.materialize(batch.batch_id, snapshot, settings)
    steps.publish(batch.batch_id, snapshot, settings=settings)
    return batch.batch_id


def _monitor(home, *args):
    proc = shopflow(home, "monitor", "--json", "--model", MODEL, *args, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_monitor_is_quiet_on_the_training_data_and_alerts_on_drift(settings):
    from pipelines import steps
    from pipelines.registry import get_spec
    from pipelines.serving import ServingRuntime

    home = settings.home
    first = _publish(settings, seed=11)
    trained = steps.train(MODEL, settings=settings)
    gated = steps.gate(MODEL, trained["version"], settings=settings)
    assert trained["metrics"] and trained["version"] == "1"
    if gated["registry"]["champion"] != "1":  # the gate kept it out (no significant win over the baselines)
        from pipelines.rollout.lifecycle import promote_manually

        promote_manually(settings, MODEL, "1", "test", "the monitoring test needs a champion to watch")

    # Real serving runtime (Feast online store, registry champion) answering requests: it logs the sample.
    runtime = ServingRuntime(settings, get_spec(MODEL))
    spec = get_spec(MODEL).serving
    from pipelines.data.io import read_table
    from pipelines.features.snapshot import current_batch_dir

    ids = read_table(current_batch_dir(settings), "customers")["customer_id"].astype(str).tolist()
    for i in range(0, 240, 8):
        runtime.handle(spec.request(customer_ids=ids[i:i + 8]))

    code, quiet = _monitor(home)
    churn = quiet["models"][0]
    checks = {c["name"]: c for c in churn["checks"]}
    assert code == 0 and quiet["breaches"] == [], quiet["reason"]
    assert checks["data drift (newest batch)"]["status"] == "ok"  # the trained snapshot itself: PSI 0
    assert checks["data drift (newest batch)"]["values"]["max_psi"] == 0
    assert checks["data drift (served)"]["status"] == "ok", checks["data drift (served)"]["reason"]
    assert checks["data drift (served)"]["values"]["rows_current"] == 240
    assert checks["prediction drift (served)"]["status"] == "ok", checks["prediction drift (served)"]["reason"]
    assert checks["live performance"]["status"] == "skipped"  # no outcomes newer than training yet
    assert first in checks["live performance"]["reason"]

    _publish(settings, seed=12, drift=0.5)
    second = _publish(settings, seed=13, drift=1.0)
    code, alert = _monitor(home)
    churn = alert["models"][0]
    checks = {c["name"]: c for c in churn["checks"]}
    assert code == 1 and alert["breaches"] == [MODEL]
    newest = checks["data drift (newest batch)"]
    assert newest["status"] == "breach" and "column(s) drifted" in newest["reason"]
    assert "\n" not in alert["reason"] and alert["reason"].startswith(f"{MODEL} v1: data drift (newest batch)")
    live = checks["live performance"]
    assert live["status"] in ("ok", "breach"), live["reason"]  # v1 scored on the new batch's outcomes
    assert live["values"]["metric"] == get_spec(MODEL).primary_metric and live["values"]["units"] >= 30
    assert live["values"]["scope"] == "served units" or "holdout units of batch" in live["values"]["scope"]
    assert live["values"]["offline"] == pytest.approx(trained["value"])

    # The one-line reason on the plain CLI, the history, the report and its MLflow run.
    plain = shopflow(home, "monitor", "--model", MODEL, check=False)
    assert plain.returncode == 1 and "error: monitoring breach: churn v1: data drift" in plain.stdout
    assert "Traceback" not in plain.stdout + plain.stderr
    history = [json.loads(line) for line in (home / "monitoring" / "history.jsonl").read_text().splitlines()]
    assert [h["breaches"] for h in history] == [[], [MODEL], [MODEL]]
    report = (home / "monitoring" / "reports" / f"{alert['run_id']}.html").read_text()
    assert "monetary" in report and "breach" in report
    from pipelines import tracking

    client = tracking.configure(settings)
    run = client.get_run(alert["mlflow_run_id"])
    assert run.data.tags["shopflow.monitor.status"] == "breach"
    assert run.data.metrics["churn.data_drift_newest_batch.breach"] == 1.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")} >= {
        "monitoring/report.html", "monitoring/result.json"}
    assert second != first
