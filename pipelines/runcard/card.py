"""Collect a pipeline run's facts (stored as JSON) and render its card (rendered when served, so its links point
at the UIs actually running)."""

from __future__ import annotations

import json
import logging
import time
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipelines.paths import atomic_write
from pipelines.settings import Settings

log = logging.getLogger(__name__)


def cards_dir(settings: Settings) -> Path:
    return settings.reports_dir / "runs"


def _batch(settings: Settings) -> dict[str, Any] | None:
    from pipelines.data.current import read_current

    current = read_current(settings)
    if current is None:
        return None
    report_file = settings.batches_dir / current.batch_id / "report.json"
    rep = json.loads(report_file.read_text()) if report_file.exists() else {}

    def docs(path: str | None) -> str | None:  # a path under the GX folder, as the card server serves it
        if not path:
            return None
        try:
            return Path(path).resolve().relative_to(settings.gx_dir.resolve()).as_posix()
        except ValueError:
            return None

    return {"batch_id": current.batch_id, "snapshot_id": current.snapshot_id,
            "rows": rep.get("row_counts", {}), "evaluated": rep.get("evaluated"),
            "failed": len(rep.get("failed", [])), "validated_at": rep.get("validated_at"),
            "data_docs": docs(rep.get("data_docs_index")),
            "data_docs_pages": {t: docs(p) for t, p in (rep.get("data_docs_pages") or {}).items()}}


def _monitoring(settings: Settings) -> dict[str, Any] | None:
    from pipelines.monitoring.store import read_history

    history = read_history(settings)
    if not history:
        return None
    last = history[-1]
    return {"run_id": last["run_id"], "started": last["started"], "breaches": last["breaches"],
            "reason": last["reason"], "report": Path(last["report"]).name}


def _rollouts(settings: Settings, model: str) -> dict[str, Any]:
    from pipelines.rollout import lifecycle

    try:
        status = lifecycle.status(settings, model)
        experiment = {k: status.get(k) for k in ("experiment_id", "status", "champion_version",
                                                 "challenger_version", "weights", "stage", "recommendation")}
    except Exception:  # noqa: BLE001 - no experiment yet (RolloutError) is the common case
        experiment = None
    return {"experiment": experiment, "aliases": lifecycle.history(settings, model)[-5:]}


def collect(settings: Settings, dag_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The facts of the run that just finished: batch, monitoring, each model's report row and rollouts."""
    from pipelines.registry import load_registry
    from pipelines.training import run_summary

    models = []
    for name in load_registry():
        row = run_summary(settings, name)
        if row is not None:
            models.append({**row, **_rollouts(settings, name)})
    return {"run_id": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), "finished": time.time(),
            "batch": _batch(settings), "monitoring": _monitoring(settings), "models": models,
            "dag_runs": dag_runs or []}


def record(settings: Settings, dag_runs: list[dict[str, Any]] | None = None) -> Path:
    """Store the facts of the run as ``<home>/reports/runs/<run>.json`` (one write); returns the path."""
    card = collect(settings, dag_runs)
    path = cards_dir(settings) / f"{card['run_id']}.json"
    atomic_write(path, json.dumps(card, indent=1, default=str))
    return path


def list_cards(settings: Settings) -> list[dict[str, Any]]:
    """Every stored card, newest first."""
    folder = cards_dir(settings)
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


# ---------------------------------------------------------------- rendering
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:75em}
table{border-collapse:collapse;margin:.4em 0 1.4em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;
font-size:.9em}th{background:#f3f3f3}.ok{color:#17693a}.bad{color:#b00020;font-weight:bold}nav a{margin-right:1em}"""


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.4f}" if isinstance(x, float) else escape(str(x))


def _page(title: str, body: str, links: dict[str, str]) -> str:
    nav = "".join(f"<a href='{escape(u)}'>{escape(n)}</a>" for n, u in links.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{_STYLE}</style>"
            f"</head><body><nav>{nav}</nav><h1>{escape(title)}</h1>{body}</body></html>")


def render_card(card: dict[str, Any], airflow: str, mlflow: str) -> str:
    """One run's card; ``airflow`` and ``mlflow`` are the UIs' base URLs."""
    parts = []
    b = card.get("batch")
    if b:
        docs = f" · <a id='data-docs' href='/gx/{quote(b['data_docs'])}'>Data Docs</a>" if b.get("data_docs") else ""
        pages = " ".join(f"<a href='/gx/{quote(p)}'>{escape(t)}</a>" for t, p in b["data_docs_pages"].items() if p)
        parts.append(
            f"<h2>Batch</h2><p>batch <code>{escape(b['batch_id'])}</code>, feature snapshot "
            f"<code>{escape(str(b['snapshot_id']))}</code>; validation "
            f"{_f((b['evaluated'] or 0) - b['failed'])}/{_f(b['evaluated'])} checks passed{docs}</p>"
            + (f"<p>Per table: {pages}</p>" if pages else "")
            + "<table><tr><th>table</th><th>rows</th></tr>"
            + "".join(f"<tr><td>{escape(t)}</td><td>{n:,}</td></tr>" for t, n in b["rows"].items()) + "</table>")
    else:
        parts.append("<h2>Batch</h2><p>No batch is current.</p>")
    m = card.get("monitoring")
    if m:
        verdict = (f"<span class='bad'>breach: {escape(m['reason'])}</span>" if m["breaches"]
                   else "<span class='ok'>no breach</span>")
        parts.append(f"<h2>Drift</h2><p>monitoring run <a id='drift' href='/monitoring/{quote(m['report'])}'>"
                     f"{escape(m['run_id'])}</a> ({escape(m['started'])}): {verdict}</p>")
    else:
        parts.append("<h2>Drift</h2><p>No monitoring run yet (<code>shopflow monitor</code>).</p>")
    rows = "".join(
        f"<tr><td><a href='{escape(mlflow)}/#/models/{quote(r['model'])}/versions/{quote(r['version'])}'>"
        f"{escape(r['model'])}</a></td><td>{escape(r['metric'])}</td><td>{_f(r['value'])}</td>"
        f"<td>{_f(r['baseline'])} ({escape(str(r['baseline_name']))})</td><td>{_f(r['oracle'])}</td>"
        f"<td>v{escape(r['version'])}</td><td>{escape(r['alias'] or '–')}</td><td>{_f(r.get('gate_reason'))}</td></tr>"
        for r in card["models"])
    parts.append("<h2>Models</h2><table><tr><th>model</th><th>metric</th><th>value</th><th>best baseline</th>"
                 f"<th>oracle</th><th>version</th><th>alias</th><th>gate</th></tr>{rows}</table>")
    for r in card["models"]:
        exp = r.get("experiment")
        moves = "".join(f"<tr><td>{escape(str(a.get('ts')))}</td><td>{escape(str(a.get('alias')))}</td>"
                        f"<td>v{escape(str(a.get('version')))}</td><td>{escape(str(a.get('actor')))}</td>"
                        f"<td>{escape(str(a.get('reason')))}</td></tr>" for a in r.get("aliases", []))
        text = (f"A/B experiment {escape(str(exp['experiment_id']))}: {escape(str(exp['status']))}, challenger "
                f"v{escape(str(exp['challenger_version']))} at {_f((exp.get('weights') or {}).get('challenger'))}"
                if exp else "no A/B experiment")
        parts.append(f"<h3>{escape(r['model'])}: registry aliases and rollouts</h3><p>{text}</p>"
                     + (f"<table><tr><th>when</th><th>alias</th><th>version</th><th>by</th><th>why</th></tr>{moves}"
                        "</table>" if moves else ""))
    dag_runs = card.get("dag_runs") or []
    if dag_runs:
        parts.append("<h2>DAG runs</h2><table><tr><th>DAG</th><th>result</th><th>seconds</th></tr>" + "".join(
            f"<tr><td><a href='{escape(airflow)}/dags/{quote(d['dag_id'])}'>{escape(d['dag_id'])}</a></td>"
            f"<td class='{'ok' if d['ok'] else 'bad'}'>{'ok' if d['ok'] else 'failed'}</td>"
            f"<td>{d['seconds']:.0f}</td></tr>" for d in dag_runs) + "</table>")
    return _page(f"Run {card['run_id']}", "\n".join(parts),
                 {"all runs": "/", "Airflow": f"{airflow}/dags", "MLflow": mlflow})


def render_index(cards: list[dict[str, Any]], airflow: str, mlflow: str) -> str:
    rows = "".join(
        f"<tr><td><a href='/runs/{quote(c['run_id'])}'>{escape(c['run_id'])}</a></td>"
        f"<td>{escape((c.get('batch') or {}).get('batch_id', '–'))}</td>"
        f"<td>{len(c.get('models', []))}</td>"
        f"<td>{'breach' if (c.get('monitoring') or {}).get('breaches') else 'ok' if c.get('monitoring') else '–'}</td>"
        "</tr>" for c in cards)
    body = ("<table><tr><th>run</th><th>batch</th><th>models</th><th>drift</th></tr>" + rows + "</table>" if cards
            else "<p>No run card yet: <code>shopflow run</code> writes one per run.</p>")
    return _page("ShopFlow runs", body, {"Airflow": f"{airflow}/dags", "MLflow": mlflow})
