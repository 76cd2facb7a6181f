"""The ``shopflow`` command line: run the platform, manage data, train, report, serve and open the UIs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import Settings, get_settings

app = typer.Typer(help="ShopFlow: workflow-orchestrated MLOps for e-commerce.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Generate, import and inspect raw data batches.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _add_subcommands() -> None:
    """Sub-apps that live beside their library code (A/B rollout, Kubernetes manifests)."""
    from pipelines.deploy.cli import app as k8s_app
    from pipelines.rollout.cli import app as rollout_app

    app.add_typer(rollout_app, name="rollout", help="A/B rollout of a challenger: start, status, step, promote, "
                                                     "rollback, history, restore.")
    app.add_typer(k8s_app, name="k8s", help="Render and validate the Kubernetes manifests (Kustomize).")


_add_subcommands()
# Wide enough for the summary tables when output goes to a file or CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _parse_sets(sets: list[str]) -> dict[str, str]:
    out = {}
    for item in sets:
        if "=" not in item:
            _fail(f"--set expects key=value, got {item!r}", 2)
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("great_expectations", "feast", "alembic", "mlflow", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------- data
@data_app.command("generate")
def data_generate(customers: Optional[int] = typer.Option(None, help="Number of customers (default from settings)."),
                  seed: Optional[int] = typer.Option(None, help="Random seed (default from settings).")) -> None:
    """Generate a seeded synthetic shop into the landing area (hidden truth kept apart)."""
    from pipelines.data.generator import generate

    s = _settings()
    t0 = time.perf_counter()
    batch = generate(s.landing_dir, s.truth_dir, customers=customers or s.customers, seed=s.seed if seed is None else seed)
    console.print(f"generated batch [bold]{batch.batch_id}[/] in {time.perf_counter() - t0:.1f}s -> {batch.batch_dir}")


@data_app.command("import")
def data_import(directory: Path = typer.Argument(..., help="Folder with one Parquet/CSV file per table."),
                historical: bool = typer.Option(False, "--historical", help=(
                    "Old data: judge its freshness as of its own newest timestamp, not now (kept with the batch)."))
                ) -> None:
    """Check a folder of your own tables against the documented schema and stage it for validation."""
    from pipelines.data.importer import import_batch
    from pipelines.data.io import BatchFormatError

    s = _settings()
    if not directory.is_dir():
        _fail(f"{directory} is not a folder")
    try:
        result = import_batch(directory, s.landing_dir, historical=historical)
    except BatchFormatError as exc:
        console.print(f"[bold red]cannot import {directory}[/]")
        for problem in exc.problems:
            console.print(f"  - {problem}")
        console.print("See docs/data-schema.md for the expected files and columns.")
        raise typer.Exit(1)
    for warning in getattr(result, "warnings", []) or []:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print("model families this batch can train:")
    for line in result.family_report():
        console.print(f"  {line}")
    console.print(f"imported batch [bold]{result.batch_id}[/] -> {result.batch_dir}; run `shopflow run --no-generate` "
                  "or `shopflow validate` next")


@app.command()
def validate(batch_id: Optional[str] = typer.Argument(None, help="Landing batch id (newest if omitted)."),
             historical: Optional[bool] = typer.Option(None, "--historical/--not-historical", help=(
                 "Judge freshness as of the batch's newest timestamp (old data); default: as imported."))) -> None:
    """Run the Great Expectations gate on a landing batch (accept or quarantine)."""
    from pipelines.validation.gate import DataValidationError, gate, latest_landing_batch

    s = _settings()
    batch_id = batch_id or latest_landing_batch(s)
    if batch_id is None:
        _fail("no landing batch: run `shopflow data generate` or `shopflow data import DIR`")
    try:
        report = gate(batch_id, s, historical=historical)
    except DataValidationError as exc:
        console.print(f"[bold red]batch {batch_id} rejected and quarantined[/]\n{exc}")
        raise typer.Exit(1)
    console.print(f"[green]batch {batch_id} passed {report.evaluated} checks[/]; Data Docs: {report.data_docs_index}")
    for note in report.notes:
        console.print(f"note: {note}")
    for family, why in report.families.items():
        console.print(f"  {family}: {'yes' if not why else f'no ({why})'}")


# ---------------------------------------------------------------- training and report
@app.command()
def train(model: str = typer.Argument(..., help="Model family, e.g. churn."),
          set_: list[str] = typer.Option([], "--set", help="Hyper-parameter override key=value (repeatable)."),
          force: bool = typer.Option(False, help="Retrain even if these inputs were trained before.")) -> None:
    """Train one model family on the last validated batch and run its champion/challenger gate."""
    from pydantic import ValidationError

    from pipelines.data.kinds import MissingDataError
    from pipelines.registry import get_spec
    from pipelines.training import NoValidatedDataError, evaluate_and_promote, train_model

    s = _settings()
    overrides = _parse_sets(set_)
    try:
        get_spec(model).parse_params(overrides)
    except KeyError as exc:
        _fail(str(exc.args[0]), 2)
    except ValidationError as exc:
        _fail(f"bad --set for {model}: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                  for e in exc.errors()), 2)
    try:
        trained = train_model(model, s, overrides, force)
    except (NoValidatedDataError, MissingDataError) as exc:
        _fail(str(exc))
    gate = evaluate_and_promote(model, s, trained["version"], overrides)
    console.print_json(json.dumps(trained | gate, default=str))


def report_rows(s: Settings) -> list[dict]:
    from pipelines.registry import load_registry
    from pipelines.training import run_summary

    return [row for name in load_registry() if (row := run_summary(s, name))]


@app.command()
def report(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Each model's main metric, best baseline, oracle and registry version/alias."""
    s = _settings()
    rows = report_rows(s)
    if as_json:
        keys = ("metric", "value", "baseline", "oracle", "version", "alias")
        typer.echo(json.dumps({r["model"]: {k: r[k] for k in keys} for r in rows}, indent=2))
        return
    _print_models(rows)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def _print_models(rows: list[dict]) -> None:
    table = Table(title="Models")
    for col in ("model", "metric", "value", "best baseline", "oracle", "version", "alias", "versions"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], r["metric"], _fmt(r["value"]), f"{_fmt(r['baseline'])} ({r['baseline_name']})",
                      _fmt(r["oracle"]), r["version"], r["alias"] or "—", str(r["versions"]))
    console.print(table)


# ---------------------------------------------------------------- the main job
@app.command()
def run(customers: Optional[int] = typer.Option(None, help="Scale of the generated shop."),
        generate_data: bool = typer.Option(True, "--generate/--no-generate",
                                           help="Generate a seeded batch first (idempotent)."),
        models: Optional[list[str]] = typer.Option(None, "--model", help="Only these families (default: all)."),
        force: bool = typer.Option(False, help="Retrain even if nothing changed.")) -> None:
    """Run the whole platform through Airflow: data DAG (GX gate, Feast) then each model's training DAG."""
    from pipelines import orchestration
    from pipelines.registry import load_registry

    s = _settings()
    log_dir = s.home / "logs" / time.strftime("%Y%m%dT%H%M%S")
    t_start = time.perf_counter()
    if generate_data:
        data_generate(customers=customers, seed=None)
    names = models or list(load_registry())
    steps = [("shopflow_data", None)] + [(f"shopflow_train_{n}", {"overrides": {}, "force": force}) for n in names]
    with console.status("preparing Airflow metadata DB (first run only)…"):
        orchestration.ensure_airflow_db(s, log_dir)
    results = []
    for i, (dag_id, conf) in enumerate(steps, 1):
        reason = _untrainable(s, dag_id.removeprefix("shopflow_train_")) if conf is not None else None
        if reason:  # a bring-your-own batch may carry only some families' data
            console.print(f"[{i}/{len(steps)}] {dag_id}: [yellow]skipped[/] ({reason})", highlight=False)
            continue
        with console.status(f"[{i}/{len(steps)}] airflow dags test {dag_id} …"):
            res = orchestration.test_dag(s, dag_id, conf, log_dir)
        results.append(res)
        mark = "[green]ok[/]" if res.ok else "[bold red]FAILED[/]"
        console.print(f"[{i}/{len(steps)}] {dag_id}: {mark} in {res.seconds:.0f}s (log: {res.log_path})")
        if not res.ok:
            _explain_failure(s, res)
            raise typer.Exit(1)
    _print_summary(s, time.perf_counter() - t_start)


def _untrainable(s: Settings, family: str) -> str | None:
    """Why the current batch cannot train ``family`` (missing tables), or ``None`` when it can."""
    from pipelines.data.kinds import MissingDataError, require
    from pipelines.data.schema import family_data
    from pipelines.training import data_context

    if family not in family_data():
        return None
    try:
        require(data_context(s), family)
    except MissingDataError as exc:
        return str(exc)
    return None


def _explain_failure(s: Settings, res) -> None:
    quarantined = sorted(s.quarantine_dir.glob("*/summary.md"), key=lambda p: p.stat().st_mtime)
    if res.dag_id == "shopflow_data" and quarantined:
        console.print(f"[bold red]The batch failed validation and was quarantined; nothing was trained.[/]\n"
                      f"{quarantined[-1].read_text()}\nReport: {quarantined[-1]}")
    else:
        tail = res.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in tail if "Error" in line or "Exception" in line][-5:]
        console.print("\n".join(errors) or "\n".join(tail[-15:]))


def _print_summary(s: Settings, seconds: float) -> None:
    batch = s.current_batch_dir()
    report_file = batch / "report.json" if batch else None
    if report_file and report_file.exists():
        rep = json.loads(report_file.read_text())
        data = Table(title=f"Data batch {batch.name}")
        data.add_column("table")
        data.add_column("rows", justify="right")
        for name, n in rep.get("row_counts", {}).items():
            data.add_row(name, f"{n:,}")
        console.print(data)
        console.print(f"validation: {rep['evaluated'] - len(rep['failed'])}/{rep['evaluated']} checks passed")
        docs = rep.get("data_docs_index")
    else:
        docs = None
    _print_models(report_rows(s))
    console.print(f"finished in {seconds:.0f}s. Where to look:")
    console.print(f"  MLflow UI:  mlflow ui --backend-store-uri {s.tracking_uri}   (or `shopflow ui`)")
    if docs:
        console.print(f"  Data Docs:  {docs}")
    console.print(f"  Airflow UI: shopflow ui   (DAGs: {orchestration_dags()})")


def orchestration_dags() -> str:
    from pipelines.registry import load_registry

    names = list(load_registry())
    return ", ".join(["shopflow_data"] + [f"shopflow_train_{n}" for n in names]
                     + [f"shopflow_rollout_{n}" for n in names])


# ---------------------------------------------------------------- serving and UIs
@app.command()
def serve(model: str = typer.Argument(..., help="Model family to serve, e.g. churn."),
          port: int = typer.Option(3000, help="HTTP port."),
          host: str = typer.Option("127.0.0.1", help="Bind address.")) -> None:
    """Serve a model family with BentoML on localhost (champion, plus the challenger during an A/B rollout)."""
    from model_serving.launcher import serve_command

    s = _settings()
    try:
        cmd, env = serve_command(model, s, port=port, host=host)
    except KeyError as exc:
        _fail(str(exc.args[0]), 2)
    console.print(f"serving {model} on http://{host}:{port} (API key: see {s.home / 'api_key'} or SHOPFLOW_API_KEY)")
    raise typer.Exit(subprocess.call(cmd, env=env))


@app.command()
def build(model: str = typer.Argument(..., help="Model family, e.g. churn.")) -> None:
    """Build the family's Bento (`bentoml build` of model_serving/bentofile.<model>.yaml), offline."""
    from model_serving.bentofiles import stale_files
    from model_serving.launcher import build_command
    from pipelines.settings import PROJECT_ROOT

    try:
        cmd = build_command(model)
    except KeyError as exc:
        _fail(str(exc.args[0]), 2)
    if stale_files():
        _fail("bentofiles are out of date with the registry: run `python -m model_serving.bentofiles`")
    raise typer.Exit(subprocess.call(cmd, cwd=PROJECT_ROOT))


@app.command()
def ui(airflow_port: int = typer.Option(8080, help="Airflow UI port."),
       mlflow_port: int = typer.Option(5000, help="MLflow UI port.")) -> None:
    """Start the Airflow UI (api-server, scheduler, dag-processor) and the MLflow UI on localhost."""
    from pipelines import orchestration

    s = _settings()
    log_dir = s.home / "logs" / "ui"
    orchestration.ensure_airflow_db(s, log_dir)
    env = orchestration.airflow_env(s)
    airflow = orchestration.airflow_bin()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    procs = {
        "airflow api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(airflow_port)],
        "airflow scheduler": [airflow, "scheduler"],
        "airflow dag-processor": [airflow, "dag-processor"],
        "airflow triggerer": [airflow, "triggerer"],
        "mlflow ui": [mlflow_bin, "ui", "--backend-store-uri", s.tracking_uri, "--port", str(mlflow_port),
                      "--host", "127.0.0.1"],
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    import signal

    def _stop(signum, frame):  # SIGTERM (e.g. from a supervisor) stops the children like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    running = []
    for name, cmd in procs.items():
        fh = open(log_dir / f"{name.replace(' ', '-')}.log", "a")
        running.append((name, subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)))
    console.print(f"Airflow UI: http://127.0.0.1:{airflow_port}  (all users are admin locally)\n"
                  f"MLflow UI:  http://127.0.0.1:{mlflow_port}\nlogs: {log_dir}\nCtrl-C stops everything.")
    try:
        while all(p.poll() is None for _, p in running):
            time.sleep(1)
        dead = [n for n, p in running if p.poll() is not None]
        console.print(f"[red]{', '.join(dead)} exited; see {log_dir}[/]")
    except KeyboardInterrupt:
        pass
    finally:
        for _, p in running:
            p.terminate()
        for _, p in running:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":  # pragma: no cover
    app()
