"""One monitoring run over every family's champion: run the checks, record the result, render the report.

Plain functions for the ``shopflow monitor`` command and the ``shopflow_monitor`` DAG. A run never raises for a
breach: it returns the result (with ``breaches`` and a one-line ``reason``) and the entry points decide (the CLI
exits non-zero, the DAG fails its task and may request retraining).
"""

from __future__ import annotations

import logging
import time
import os
from typing import Any

import pandas as pd

from pipelines.monitoring.checks import BREACH, ERROR, SKIPPED, Check, drift_check, performance_check, \
    prediction_check
from pipelines.settings import Settings

log = logging.getLogger(__name__)


def _trained_params(spec, run) -> Any:
    """The version's hyper-parameters as logged by its run (only the family's own keys)."""
    logged = run.data.params
    return spec.parse_params({k: logged[k] for k in spec.params.model_fields if k in logged})


def _performance(settings: Settings, spec, mv, run, served_units: set[str]) -> Check:
    """The champion scored on the newest batch's holdout (outcomes it never saw), through the family's own
    ``prepare``, ``holdout`` and ``metric``; restricted to the units it served when enough of them have outcomes."""
    from pipelines.monitoring.checks import Check as C
    from pipelines.training import data_context, pin_current
    from pipelines.utils import seed_everything

    name = "live performance"
    if spec.holdout is None or spec.metric is None:
        return C(name, SKIPPED, f"{spec.name} gives no per-unit results (ModelSpec.holdout/metric)")
    pinned = pin_current(settings)
    ctx = data_context(pinned)
    trained_on = mv.tags.get("shopflow.data_snapshot")
    if ctx.batch_id == trained_on:
        return C(name, SKIPPED, f"no outcomes newer than training: the newest batch {ctx.batch_id} is the one "
                                f"v{mv.version} was trained on")
    params = _trained_params(spec, run)
    seed_everything(params.seed)
    dataset = spec.prepare(ctx, params)
    model = spec.load_model(f"models:/{spec.name}/{mv.version}")
    offline = run.data.metrics.get(spec.primary_metric)
    frame = spec.holdout(model, dataset)
    served = frame[frame.index.astype(str).isin(served_units)]
    if len(served) >= settings.monitor.min_live_units:
        frame, scope = served, "served units"
    else:
        scope = f"holdout units of batch {ctx.batch_id} ({len(served)} served)"
    return performance_check(float(spec.metric(frame)), offline, spec.primary_metric, spec.higher_is_better,
                             len(frame), scope, settings.monitor)


def _guard(name: str, fn, *args) -> Check:
    """Run one check; an unexpected error becomes an ``error`` check naming it (other checks still run)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported as this check's error, the run goes on
        log.exception("monitor check %s failed", name)
        return Check(name, ERROR, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def monitor_model(settings: Settings, spec, client) -> dict[str, Any]:
    """Every check of ``spec``'s champion."""
    from pipelines import tracking
    from pipelines.features.snapshot import current_snapshot
    from pipelines.monitoring.reference import load_reference, sample, snapshot_features
    from pipelines.monitoring.served import read_served

    m = settings.monitor
    mv = tracking.version_by_alias(client, spec.name, tracking.CHAMPION)
    if mv is None:
        return {"model": spec.name, "version": None, "status": SKIPPED, "checks": [],
                "reason": "no champion yet"}
    run = client.get_run(mv.run_id)
    reference = load_reference(client, mv.run_id)
    checks: list[Check] = []
    if reference is None:
        note = f"v{mv.version} stores no training reference (trained before monitoring; retrain to add one)"
        checks += [Check("data drift (newest batch)", SKIPPED, note), Check("data drift (served)", SKIPPED, note)]
    else:
        def newest() -> Check:
            snapshot = current_snapshot(settings)
            current = sample(snapshot_features(settings, snapshot, spec.feature_service), m.reference_rows,
                             settings.seed)
            return drift_check("data drift (newest batch)", reference, current, m,
                               f"features of snapshot {snapshot} vs v{mv.version}'s training reference")

        def served() -> Check:
            rows = read_served(settings, spec.name, "features").tail(m.reference_rows)
            return drift_check("data drift (served)", reference, rows, m,
                               f"features served vs v{mv.version}'s training reference")

        checks += [_guard("data drift (newest batch)", newest), _guard("data drift (served)", served)]
    predictions = read_served(settings, spec.name, "prediction")
    checks.append(_guard("prediction drift (served)", prediction_check, predictions, str(mv.version), m))
    if m.performance:
        units = set(predictions["unit"].dropna().astype(str)) if len(predictions) else set()
        checks.append(_guard("live performance", _performance, settings, spec, mv, run, units))
    else:
        checks.append(Check("live performance", SKIPPED, "monitor.performance is false"))
    bad = [c for c in checks if c.status in (BREACH, ERROR)]
    return {"model": spec.name, "version": str(mv.version), "metric": spec.primary_metric,
            "status": bad[0].status if bad else "ok",
            "reason": "; ".join(f"{c.name}: {c.reason}" for c in bad),
            "checks": [c.to_dict() for c in checks]}


def run_monitor(settings: Settings, models: list[str] | None = None) -> dict[str, Any]:
    """Monitor the champions of ``models`` (default: every family), record the run and its HTML report.

    Returns:
        ``{"run_id", "started", "seconds", "models": [...], "breaches": [model...], "reason": one line,
        "report": path, "mlflow_run_id"}``; ``reason`` is empty when nothing breached or failed.
    """
    from pipelines import tracking
    from pipelines.monitoring.store import record
    from pipelines.registry import get_spec, load_registry

    names = models or sorted(load_registry())
    specs = [get_spec(n) for n in names]
    client = tracking.configure(settings)
    t0 = time.time()
    results = [monitor_model(settings, spec, client) for spec in specs]
    breaches = [r["model"] for r in results if r["status"] in (BREACH, ERROR)]
    result = {
        "run_id": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t0)) + f"-{os.getpid():x}",
        "started": pd.Timestamp(t0, unit="s", tz="UTC").isoformat(),
        "seconds": round(time.time() - t0, 2),
        "models": results,
        "breaches": breaches,
        "reason": " | ".join(f"{r['model']} v{r['version']}: {r['reason']}" for r in results
                             if r["model"] in breaches),
    }
    return record(settings, result)
