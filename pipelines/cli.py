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
from rich.markup import escape
from rich.table import Table

from pipelines import steps
from pipelines.cli_common import check_models, console, fail, parse_sets, settings_or_fail, validated_params
from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import Settings

app = typer.Typer(help="ShopFlow: workflow-orchestrated MLOps for e-commerce.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Generate, import and inspect raw data batches.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _add_subcommands() -> None:
    """Sub-apps that live beside their library code (A/B rollout, Kubernetes manifests)."""
    from pipelines.deploy.cli import app as k8s_app
    from pipelines.kubeflow.cli import app as kfp_app
    from pipelines.rollout.cli import app as rollout_app

    app.add_typer(rollout_app, name="rollout", help="A/B rollout of a challenger: start, status, step, promote, "
                                                     "rollback, history, restore.")
    app.add_typer(k8s_app, name="k8s", help="Render and validate the Kubernetes manifests (Kustomize).")
    app.add_typer(kfp_app, name="kfp", help="Kubeflow Pipelines: compile to IR YAML, run locally.")
    from pipelines.monitoring.cli import monitor

    app.command("monitor")(monitor)


_add_subcommands()


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("great_expectations", "feast", "alembic", "mlflow", "urllib3", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------- data
@data_app.command("generate")
def data_generate(customers: Optional[int] = typer.Option(None, help="Number of customers (default from settings)."),
                  seed: Optional[int] = typer.Option(None, help="Random seed (default from settings)."),
                  drift: float = typer.Option(0.0, help="Population drift: purchase rate and spend per order "
                                                        "x (1 + drift), for monitoring tests.")) -> None:
    """Generate a seeded synthetic shop into the landing area (hidden truth kept apart)."""
    from pipelines.data.generator import generate

    s = settings_or_fail()
    if customers is not None and customers < 20:
        fail(f"--customers must be at least 20, got {customers}", 2)
    if seed is not None and seed < 0:
        fail(f"--seed must be 0 or more, got {seed}", 2)
    if not -0.9 <= drift <= 10:
        fail(f"--drift must be between -0.9 and 10, got {drift}", 2)
    t0 = time.perf_counter()
    batch = generate(s.landing_dir, s.truth_dir, customers=customers or s.customers,
                     seed=s.seed if seed is None else seed, drift=drift)
    steps.stage(batch.batch_dir, batch.truth_dir, settings=s)
    console.print(f"generated batch [bold]{batch.batch_id}[/] in {time.perf_counter() - t0:.1f}s -> {batch.batch_dir}")


@data_app.command("import")
def data_import(directory: Path = typer.Argument(..., help="Folder with one Parquet/CSV file per table."),
                historical: bool = typer.Option(False, "--historical", help=(
                    "Old data: judge its freshness as of its own newest timestamp, not now (kept with the batch)."))
                ) -> None:
    """Check a folder of your own tables against the documented schema and stage it for validation."""
    from pipelines.data.importer import import_batch
    from pipelines.data.io import BatchFormatError

    s = settings_or_fail()
    if not directory.is_dir():
        fail(f"{directory} is not a folder")
    try:
        result = import_batch(directory, s.landing_dir, historical=historical)
        steps.stage(result.batch_dir, settings=s)
    except BatchFormatError as exc:
        console.print(f"[bold red]cannot import {directory}[/]")
        for problem in exc.problems:
            console.print(f"  - {problem}")
        console.print("See docs/data-schema.md for the expected files and columns.")
        raise typer.Exit(1)
    for warning in getattr(result, "warnings", []) or []:
        console.print(f"[yellow]warning:[/] {warning}")
    for table, kinds in (getattr(result, "attributes", {}) or {}).items():
        console.print(f"{table}: {len(kinds)} attribute column(s) kept: "
                      + ", ".join(f"{c} ({k})" for c, k in kinds.items()))
    console.print("model families this batch can train:")
    for line in result.family_report():
        console.print(f"  {line}")
    console.print(f"imported batch [bold]{result.batch_id}[/] -> {result.batch_dir}; run `shopflow run --no-generate` "
                  "or `shopflow validate` next")


@app.command()
def validate(batch_id: Optional[str] = typer.Argument(None, help="Landing batch id (newest if omitted)."),
             historical: Optional[bool] = typer.Option(None, "--historical/--not-historical", help=(
                 "Judge freshness as of the batch's newest timestamp (old data); default: as imported."))) -> None:
    """Run the Great Expectations gate on a landing batch: accept it (pending) or quarantine it.

    An accepted batch becomes CURRENT when its features are built (`shopflow run --no-generate` or
    `shopflow data use BATCH`)."""
    from pipelines.paths import InvalidIdError, UnsafePathError
    from pipelines.validation.gate import BatchNotFoundError, DataValidationError, gate, latest_landing_batch

    s = settings_or_fail()
    batch_id = batch_id if batch_id is not None else latest_landing_batch(s)
    if batch_id is None:
        fail("no landing batch: run `shopflow data generate` or `shopflow data import DIR`")
    try:
        report = gate(batch_id, s, historical=historical)
    except (InvalidIdError, UnsafePathError, BatchNotFoundError) as exc:
        fail(str(exc), 2 if isinstance(exc, InvalidIdError) else 1)
    except DataValidationError as exc:
        console.print(f"[bold red]batch {batch_id} rejected and quarantined[/]\n{exc}")
        raise typer.Exit(1)
    from pipelines.data.current import read_current, read_pending

    current = read_current(s)
    if report.already_accepted:
        where = ("it is CURRENT" if current and current.batch_id == batch_id
                 else f"it is pending: `shopflow run --no-generate` or `shopflow data use {batch_id}` makes it CURRENT"
                 if read_pending(s) == batch_id
                 else f"CURRENT stays at {current.batch_id if current else 'nothing'}; to make it current again: "
                      f"`shopflow data use {batch_id}`")
        console.print(f"[yellow]batch {batch_id} was accepted before[/] ({report.validated_at or 'earlier'}, "
                      f"{report.evaluated} checks); nothing was validated again. {where}", soft_wrap=True)
        return
    console.print(f"[green]batch {batch_id} passed {report.evaluated} checks and is accepted[/]; Data Docs: "
                  f"{report.data_docs_index}", soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    for family, why in report.families.items():
        console.print(f"  {family}: {'yes' if not why else f'no ({why})'}")
    console.print(f"CURRENT stays at {current.batch_id if current else 'nothing'} until the features of {batch_id} are "
                  f"built: `shopflow run --no-generate` (features + training) or `shopflow data use {batch_id}` "
                  "(features only)", soft_wrap=True)


@data_app.command("use")
def data_use(batch_id: str = typer.Argument(..., help="An accepted batch id (see `shopflow data list`)."),
             reason: str = typer.Option(..., "--reason", help="Why (kept in the data history).")) -> None:
    """Make an accepted batch CURRENT (e.g. go back to an earlier one): build its features, materialise, switch."""
    from pipelines.paths import InvalidIdError
    from pipelines.publish import NotPublishableError, use

    s = settings_or_fail()
    if not reason.strip():
        fail("--reason must not be empty", 2)
    try:
        out = use(s, batch_id, reason.strip())
    except InvalidIdError as exc:
        fail(str(exc), 2)
    except NotPublishableError as exc:
        fail(str(exc))
    if not out["changed"]:
        console.print(f"batch {batch_id} is CURRENT already (feature snapshot {out['snapshot_id']}); features "
                      "re-materialised")
    else:
        console.print(f"CURRENT is now batch [bold]{batch_id}[/] with feature snapshot {out['snapshot_id']} "
                      f"(was {out['previous'] or 'nothing'})", soft_wrap=True)
    if out["dropped_pending"]:
        console.print(f"[yellow]note:[/] the pending batch {out['dropped_pending']} will not be switched in by the "
                      f"next run; `shopflow data use {out['dropped_pending']}` does that", soft_wrap=True)
    console.print("models train on it with `shopflow run --no-generate` (or `shopflow train MODEL`)")


@data_app.command("list")
def data_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Accepted batches, which one is CURRENT (with its feature snapshot) and which is pending."""
    from pipelines.publish import status

    st = status(settings_or_fail())
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    current = st["current"] or {}
    table = Table(title="Accepted batches (oldest first)")
    for col in ("batch", "state", "feature snapshot"):
        table.add_column(col)
    for batch in st["accepted"]:
        state = "CURRENT" if batch == current.get("batch_id") else "pending" if batch == st["pending"] else ""
        table.add_row(batch, state, current.get("snapshot_id") or "—" if state == "CURRENT" else "")
    console.print(table)
    if current:
        console.print(f"CURRENT since {current.get('switched_at') or '?'} by {current.get('by') or '?'}: "
                      f"{current.get('reason') or '—'}", soft_wrap=True)


@data_app.command("history")
def data_history(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every accepted batch and every switch of CURRENT: when, by whom, why."""
    from pipelines.data.current import read_history

    entries = read_history(settings_or_fail())
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    table = Table(title="Data history")
    for col in ("at", "event", "batch", "snapshot / checks", "by", "why / previous"):
        table.add_column(col)
    for e in entries:
        detail = e.get("snapshot_id") or (f"{e['checks']} checks" if "checks" in e else "")
        why = e.get("reason") or (f"compared with {e['baseline']}" if e.get("baseline") else "")
        if e.get("previous_batch_id"):
            why += f" (was {e['previous_batch_id']})"
        table.add_row(e.get("at", ""), e.get("event", ""), e.get("batch_id", ""), detail, e.get("by", ""), why)
    console.print(table)


# ---------------------------------------------------------------- training and report
@app.command()
def train(model: str = typer.Argument(..., help="Model family, e.g. churn."),
          set_: list[str] = typer.Option([], "--set", help="Hyper-parameter override key=value (repeatable)."),
          force: bool = typer.Option(False, help="Retrain even if these inputs were trained before.")) -> None:
    """Train one model family on the last validated batch and run its champion/challenger gate."""
    from pipelines.errors import UserError
    from pipelines.training import evaluate_and_promote, train_model

    s = settings_or_fail()
    overrides = parse_sets(set_)
    check_models([model])
    validated_params(model, overrides)
    try:
        trained = train_model(model, s, overrides, force)
        gate = evaluate_and_promote(model, s, trained["version"], overrides)
    except UserError as exc:
        fail(str(exc))
    console.print_json(json.dumps(trained | gate, default=str))


@app.command()
def promote(model: str = typer.Argument(..., help="Model family, e.g. forecasting."),
            version: str = typer.Argument(..., help="Registry version to make champion, e.g. 4."),
            reason: Optional[str] = typer.Option(None, "--reason", help="Why the gate is bypassed (required, "
                                                                        "recorded)."),
            actor: Optional[str] = typer.Option(None, "--actor", help="Who (recorded); default cli:<user>.")) -> None:
    """Make a version champion without the gate, for a deliberate change it cannot judge (recorded with the
    reason in the alias history; `shopflow rollout history MODEL` shows it)."""
    from pipelines.rollout.cli import _actor, _errors
    from pipelines.rollout.lifecycle import promote_manually

    s = settings_or_fail()
    check_models([model])
    with _errors():
        out = promote_manually(s, model, version, _actor(actor), reason or "")
    console.print(f"{model}: champion v{out['previous_champion']} -> v{out['champion']} ({reason})"
                  if out["changed"] else f"{model}: v{out['champion']} already is the champion; nothing changed",
                  highlight=False)


def _decide_approval(model: str, version: str, reason: Optional[str], actor: Optional[str], approve: bool) -> None:
    from pipelines.approval import ApprovalError, decide
    from pipelines.orchestration import answer_approval
    from pipelines.rollout.cli import _actor

    s = settings_or_fail()
    check_models([model])
    who = _actor(actor)
    try:
        out = decide(s, model, version, approve, who, reason or "")
    except ApprovalError as exc:
        fail(str(exc))
    verb = "approved" if approve else "rejected"
    if not out["changed"]:
        console.print(f"{model} v{out['version']} was already {verb}; nothing changed", highlight=False)
    elif approve:
        console.print(f"{model}: v{out['version']} approved and now champion ({reason})", highlight=False)
    else:
        console.print(f"{model}: v{out['version']} rejected; champion stays "
                      f"{'v' + out['champion'] if out['champion'] else 'unset'} ({reason})", highlight=False)
    try:
        if answer_approval(s, model, out["version"], approve, who, reason or ""):
            console.print("The training DAG's waiting approval task got the same answer.", highlight=False)
    except (RuntimeError, OSError) as exc:  # the registry decision stands; say what did not follow
        console.print(f"[yellow]warning:[/] {exc}", highlight=False)


@app.command()
def approve(model: str = typer.Argument(..., help="Model family, e.g. churn."),
            version: str = typer.Argument(..., help="Registry version awaiting approval."),
            reason: Optional[str] = typer.Option(None, "--reason", help="Why (required, recorded)."),
            actor: Optional[str] = typer.Option(None, "--actor", help="Who (recorded); default cli:<user>.")) -> None:
    """Approve a promotion waiting for a person (SHOPFLOW_PROMOTION=approve): the version becomes champion."""
    _decide_approval(model, version, reason, actor, approve=True)


@app.command()
def reject(model: str = typer.Argument(..., help="Model family, e.g. churn."),
           version: str = typer.Argument(..., help="Registry version awaiting approval."),
           reason: Optional[str] = typer.Option(None, "--reason", help="Why (required, recorded)."),
           actor: Optional[str] = typer.Option(None, "--actor", help="Who (recorded); default cli:<user>.")) -> None:
    """Reject a promotion waiting for a person: the champion stays (recorded in the alias history)."""
    _decide_approval(model, version, reason, actor, approve=False)


def report_rows(s: Settings) -> list[dict]:
    from pipelines.registry import load_registry
    from pipelines.training import run_summary

    return [row for name in load_registry() if (row := run_summary(s, name))]


@app.command()
def report(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Each model's main metric, best baseline, oracle and registry version/alias."""
    s = settings_or_fail()
    rows = report_rows(s)
    if as_json:
        keys = ("metric", "value", "candidate", "baseline", "baseline_name", "oracle", "version", "alias",
                "gate_reason", "tuned_params")
        typer.echo(json.dumps({r["model"]: {k: r[k] for k in keys} for r in rows}, indent=2))
        return
    _print_models(rows)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def _print_models(rows: list[dict]) -> None:
    table = Table(title="Models")
    for col in ("model", "metric", "value", "candidate", "best baseline", "oracle", "version", "alias", "versions"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], r["metric"], _fmt(r["value"]), r["candidate"],
                      f"{_fmt(r['baseline'])} ({r['baseline_name']})", _fmt(r["oracle"]), r["version"],
                      r["alias"] or "—", str(r["versions"]))
    console.print(table)
    for r in rows:
        if r.get("tuned_params"):
            console.print(f"{r['model']}: tuned parameters "
                          + ", ".join(f"{k}={v}" for k, v in sorted(r["tuned_params"].items())), highlight=False)


@app.command()
def tune(model: str = typer.Argument(..., help="Model family, e.g. churn."),
         trials: int = typer.Option(20, "--trials", help="Optuna trials (at least 1)."),
         timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting trials after S seconds."),
         set_: list[str] = typer.Option([], "--set", help="Fixed parameter key=value (repeatable)."),
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Tune a family's parameters on its validation split (Optuna, study stored in MLflow); the best become its
    training parameters (explicit --set overrides still win) and `shopflow report` shows them."""
    import optuna

    from pipelines.errors import UserError
    from pipelines.tuning import tune as run_tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one summary line, not one per trial

    if trials < 1:
        fail(f"--trials must be at least 1, got {trials}", 2)
    if timeout is not None and timeout <= 0:
        fail(f"--timeout must be positive, got {timeout:g}", 2)
    s = settings_or_fail()
    overrides = parse_sets(set_)
    check_models([model])
    validated_params(model, overrides)
    try:
        out = run_tune(model, s, trials, timeout, overrides)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    verdict = "stored" if out["improved"] else "kept the defaults (no trial beat them on validation)"
    console.print(f"{model}: {out['completed']}/{out['trials']} trials in {out['seconds']}s; validation "
                  f"{out['metric']} default {out['default_validation']:.4f}, best {out['best_validation']:.4f}; "
                  f"{verdict}: {out['stored_params']}", highlight=False)


# ---------------------------------------------------------------- the main job
@app.command()
def run(customers: Optional[int] = typer.Option(None, help="Scale of the generated shop."),
        generate_data: bool = typer.Option(True, "--generate/--no-generate",
                                           help="Generate a seeded batch first (idempotent)."),
        models: Optional[list[str]] = typer.Option(None, "--model", help="Only these families (default: all)."),
        set_: list[str] = typer.Option([], "--set", help="Hyper-parameter override model.key=value (repeatable), "
                                                          "e.g. --set ltv.horizon_days=90."),
        force: bool = typer.Option(False, help="Retrain even if nothing changed.")) -> None:
    """Run the whole platform through Airflow: data DAG (GX gate, Feast) then each model's training DAG."""
    from pipelines import orchestration
    from pipelines.registry import load_registry

    s = settings_or_fail()
    check_models(models or [])
    names = models or list(load_registry())
    overrides = _model_overrides(set_, names)
    log_dir = s.home / "logs" / time.strftime("%Y%m%dT%H%M%S")
    t_start = time.perf_counter()
    if generate_data:
        data_generate(customers=customers, seed=None, drift=0.0)
    steps = [("shopflow_data", None)] + [(f"shopflow_train_{n}", {"overrides": overrides.get(n, {}), "force": force})
                                         for n in names]
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
    from pipelines.runcard.card import record as record_card

    card = record_card(s, [{"dag_id": r.dag_id, "ok": r.ok, "seconds": r.seconds} for r in results])
    console.print(f"  Run card:   shopflow ui, then http://127.0.0.1:8090/runs/{card.stem}  ({card})", soft_wrap=True)


def _model_overrides(sets: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """``--set model.key=value`` items as ``{model: {key: value}}``, each checked against the family's params before
    anything runs (one line naming the problem otherwise)."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_sets(sets).items():
        model, dot, param = key.partition(".")
        if not dot or not param:
            fail(f"--set expects model.key=value with `shopflow run` (e.g. ltv.horizon_days=90), got {key!r}", 2)
        check_models([model])
        if model not in names:
            fail(f"--set {key}: {model} is not among the models of this run ({', '.join(names)})", 2)
        out.setdefault(model, {})[param] = value
    for model, params in out.items():
        validated_params(model, params)
    return out


def _untrainable(s: Settings, family: str) -> str | None:
    """Why the current batch cannot train ``family`` (missing tables), or ``None`` when it can."""
    from pipelines.data.kinds import MissingDataError, require
    from pipelines.registry import family_data
    from pipelines.training import data_context

    if family not in family_data():
        return None
    try:
        require(data_context(s), family)
    except MissingDataError as exc:
        return str(exc)
    return None


def _explain_failure(s: Settings, res) -> None:
    started = time.time() - res.seconds - 1
    quarantined = sorted((p for p in s.quarantine_dir.glob("*/summary.md") if p.stat().st_mtime >= started),
                         key=lambda p: p.stat().st_mtime)  # only a batch this run quarantined explains its failure
    if res.dag_id == "shopflow_data" and quarantined:
        console.print(f"[bold red]The batch failed validation and was quarantined; nothing was trained.[/]\n"
                      f"{quarantined[-1].read_text()}\nReport: {quarantined[-1]}")
    else:
        tail = res.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in tail if "Error" in line or "Exception" in line][-5:]
        console.print("\n".join(errors) or "\n".join(tail[-15:]))


def _print_summary(s: Settings, seconds: float) -> None:
    batch = current_batch_dir(s)
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
        from pipelines.data.current import read_current, read_pending

        current, pending = read_current(s), read_pending(s)
        if current is not None:
            console.print(f"CURRENT: batch {current.batch_id}, feature snapshot {current.snapshot_id or '—'}"
                          + (f"; pending: {pending}" if pending else ""), soft_wrap=True)
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
          port: int = typer.Option(3000, help="HTTP port (1-65535)."),
          host: str = typer.Option("127.0.0.1", help="Bind address.")) -> None:
    """Serve a model family with BentoML on localhost (champion, plus the challenger during an A/B rollout).

    SIGTERM or Ctrl-C stops BentoML and every worker it started.
    """
    import shutil
    import tempfile

    from model_serving.launcher import serve_command
    from pipelines.supervise import Stopped, Supervisor, check_port, stop_on_signals, wait_ready

    s = settings_or_fail()
    try:
        check_port(host, port)
        cmd, env = serve_command(model, s, port=port, host=host)
    except (KeyError, ValueError) as exc:
        fail(str(exc.args[0]), 2)
    _require_champion(s, model)
    # A private BentoML home: its Prometheus multiprocess directory is this service's alone (BentoML wipes that
    # directory on start, and two services sharing it would show each other's series). Removed on exit.
    bentoml_home = env["BENTOML_HOME"] = tempfile.mkdtemp(prefix=f"shopflow-serve-{model}-")
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{local}]' if ':' in local else local}:{port}"
    console.print(f"starting {model} on {url} (API key: see {s.home / 'api_key'} or SHOPFLOW_API_KEY)")
    supervisor = Supervisor()
    code = 0
    try:
        with stop_on_signals():
            proc = supervisor.start(cmd, env=env)
            if wait_ready(f"{url}/readyz", proc, timeout=600):
                console.print(f"[green]{model} ready[/] on {url}; Ctrl-C or SIGTERM stops it")
            code = proc.wait()
    except Stopped:
        code = 0
    finally:
        supervisor.stop()
        shutil.rmtree(bentoml_home, ignore_errors=True)
    if code:
        fail(f"bentoml serve of {model} exited with code {code} (see its log above)", 1)


def _require_champion(s: Settings, model: str) -> None:
    """One line, before any process starts, when there is nothing the gate let through to serve."""
    from pipelines import tracking

    if s.serving.arm not in ("both", tracking.CHAMPION):
        return
    client = tracking.configure(s)
    if tracking.version_by_alias(client, model, tracking.CHAMPION) is not None:
        return
    latest = tracking.version_by_alias(client, model, tracking.CHALLENGER)
    if latest is None:
        fail(f"{model} has no registered version yet: train it first (`shopflow run` or `shopflow train {model}`)")
    why = latest.tags.get("shopflow.gate_reason") or latest.tags.get("shopflow.gate") or "not judged yet"
    fail(f"{model} has no champion: v{latest.version} was not promoted ({why}); nothing that lost to a baseline is "
         f"served. Deliberately: `shopflow promote {model} {latest.version} --reason ...`")


@app.command()
def build(model: str = typer.Argument(..., help="Model family, e.g. churn.")) -> None:
    """Build the family's Bento (`bentoml build` of model_serving/bentofile.<model>.yaml), offline."""
    from model_serving.bentofiles import stale_files
    from model_serving.launcher import build_command
    from pipelines.settings import PROJECT_ROOT

    try:
        cmd = build_command(model)
    except KeyError as exc:
        fail(str(exc.args[0]), 2)
    if stale_files():
        fail("bentofiles are out of date with the registry: run `python -m model_serving.bentofiles`")
    raise typer.Exit(subprocess.call(cmd, cwd=PROJECT_ROOT))


@app.command()
def ui(airflow_port: int = typer.Option(8080, help="Airflow UI port."),
       mlflow_port: int = typer.Option(5000, help="MLflow UI port."),
       cards_port: int = typer.Option(8090, help="Run cards, Data Docs and monitoring reports.")) -> None:
    """Start the Airflow UI (api-server, scheduler, dag-processor), the MLflow UI and the run cards on localhost.

    SIGTERM or Ctrl-C stops every process it started (including Airflow's own helpers such as serve-logs).
    """
    from pipelines import orchestration
    from pipelines.supervise import Stopped, Supervisor, check_port, stop_on_signals

    try:
        check_port("127.0.0.1", airflow_port, "--airflow-port")
        check_port("127.0.0.1", mlflow_port, "--mlflow-port")
        check_port("127.0.0.1", cards_port, "--cards-port")
        if len({airflow_port, mlflow_port, cards_port}) < 3:
            raise ValueError(f"--airflow-port, --mlflow-port and --cards-port must differ, got {airflow_port}, "
                             f"{mlflow_port}, {cards_port}")
    except ValueError as exc:
        fail(str(exc), 2)
    s = settings_or_fail()
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
        # One worker: uvicorn's supervisor of several kills a worker that misses its 5 s health check, and on a busy
        # machine (workers importing MLflow) they were killed and respawned for minutes, the UI never answering.
        "mlflow ui": [mlflow_bin, "ui", "--backend-store-uri", s.tracking_uri, "--port", str(mlflow_port),
                      "--host", "127.0.0.1", "--workers", "1"],
        "run cards": [sys.executable, "-m", "pipelines.runcard.server", "--port", str(cards_port),
                      "--airflow", f"http://127.0.0.1:{airflow_port}", "--mlflow", f"http://127.0.0.1:{mlflow_port}"],
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    failed = None
    try:
        with stop_on_signals():
            running = []
            for name, cmd in procs.items():
                with open(log_dir / f"{name.replace(' ', '-')}.log", "a") as fh:
                    running.append((name, supervisor.start(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)))
            console.print(f"Airflow UI: http://127.0.0.1:{airflow_port}  (all users are admin locally)\n"
                          f"MLflow UI:  http://127.0.0.1:{mlflow_port}\n"
                          f"Run cards:  http://127.0.0.1:{cards_port}\nlogs: {log_dir}\n"
                          "Ctrl-C or SIGTERM stops everything.")
            while all(p.poll() is None for _, p in running):
                time.sleep(1)
            failed = ", ".join(n for n, p in running if p.poll() is not None)
    except Stopped:
        pass
    finally:
        supervisor.stop()
    if failed:
        fail(f"{failed} exited; the others were stopped; see the logs in {log_dir}")


def entry() -> None:
    """Console-script entry point: an error nobody anticipated is still one line, not a traceback.

    Commands report the errors they expect themselves; this is the net under them. ``-v`` shows the traceback.
    """
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last resort of a CLI
        if "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        console.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(first)} (rerun with -v for the traceback)",
                      soft_wrap=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    entry()
