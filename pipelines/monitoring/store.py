"""Recording monitoring runs: a JSON line per run in ``history.jsonl``, the HTML report beside it, and an MLflow
run in the ``shopflow-monitoring`` experiment (metrics per model over time, the report as an artifact)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pipelines.paths import atomic_write
from pipelines.settings import Settings

log = logging.getLogger(__name__)

EXPERIMENT = "shopflow-monitoring"
"""The MLflow experiment of monitoring runs (``tracking.experiment_for(settings, "monitoring")``)."""


def history_path(settings: Settings):
    return settings.monitoring_dir / "history.jsonl"


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics: ``<model>.<check>.<value>`` for the numeric values of each check."""
    out = {}
    for model in result["models"]:
        for check in model["checks"]:
            key = check["name"].replace(" ", "_").replace("(", "").replace(")", "")
            for name, value in check["values"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{model['model']}.{key}.{name}"] = float(value)
            out[f"{model['model']}.{key}.breach"] = float(check["status"] in ("breach", "error"))
    return out


def _log_mlflow(settings: Settings, result: dict[str, Any], html: str) -> str:
    import mlflow

    from pipelines import tracking

    tracking.configure(settings)
    experiment_id = tracking.experiment_for(settings, "monitoring")  # shopflow-monitoring
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{result['run_id']}") as run:
        mlflow.set_tags({"shopflow.monitor.status": "breach" if result["breaches"] else "ok",
                         "shopflow.monitor.reason": result["reason"][:5000] or "no breach",
                         **{f"shopflow.champion.{m['model']}": str(m["version"]) for m in result["models"]}})
        mlflow.log_metrics(_metrics(result))
        mlflow.log_text(html, "monitoring/report.html")
        mlflow.log_dict(result, "monitoring/result.json")
        return run.info.run_id


def record(settings: Settings, result: dict[str, Any]) -> dict[str, Any]:
    """Write the report, log the MLflow run, then append the run to the history; returns ``result`` with
    ``report`` and ``mlflow_run_id``."""
    from pipelines.monitoring.report import render

    html = render(result, settings.monitor.model_dump())
    reports = settings.monitoring_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"{result['run_id']}.html"
    atomic_write(path, html)
    result = result | {"report": str(path), "mlflow_run_id": _log_mlflow(settings, result, html)}
    line = json.dumps({k: result[k] for k in ("run_id", "started", "breaches", "reason", "report", "mlflow_run_id")}
                      | {"models": {m["model"]: {"version": m["version"], "status": m["status"]}
                                    for m in result["models"]}})
    with open(history_path(settings), "a", encoding="utf-8") as fh:  # one write of one line: appends don't interleave
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return result


def read_history(settings: Settings) -> list[dict[str, Any]]:
    path = history_path(settings)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
