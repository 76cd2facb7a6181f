"""``shopflow monitor``: drift and live performance of every champion, recorded; non-zero exit on a breach."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli_common import check_models, console, fail, settings_or_fail


def monitor(model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Only these families "
                                                                                     "(repeatable)."),
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output (the whole result).")
            ) -> None:
    """Data drift (newest batch and served features vs the champion's training reference), prediction drift and
    live performance of each champion; the run is recorded (history, HTML report, MLflow). Exit 1 on a breach."""
    import os

    from pipelines.monitoring.monitor import run_monitor

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars around the JSON

    models = list(model or [])
    check_models(models)
    s = settings_or_fail()
    result = run_monitor(s, models or None)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        table = Table(title=f"Monitoring {result['run_id']}")
        for col in ("model", "version", "check", "status", "reason"):
            table.add_column(col, overflow="fold")
        for m in result["models"]:
            for c in m["checks"] or [{"name": "—", "status": m["status"], "reason": m["reason"]}]:
                colour = {"breach": "red", "error": "red", "ok": "green"}.get(c["status"], "dim")
                table.add_row(m["model"], str(m["version"] or "—"), c["name"], f"[{colour}]{c['status']}[/]",
                              escape(c["reason"]))
        console.print(table)
        console.print(f"report: {result['report']} (MLflow run {result['mlflow_run_id']})")
    if result["breaches"]:
        if as_json:
            raise typer.Exit(1)
        fail(f"monitoring breach: {result['reason']}")
