"""``shopflow kfp ...``: compile the pipelines to KFP IR, and run them for real with KFP's local runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pipelines.settings import PROJECT_ROOT, get_settings

app = typer.Typer(help="Kubeflow Pipelines generated from the registry.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 160)
KFP_DIR = PROJECT_ROOT / "k8s" / "kfp"


@app.command("compile")
def compile_(out: Path = typer.Option(KFP_DIR, "--out", help="Folder of the compiled pipelines."),
             check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if the files are stale.")) -> None:
    """Compile the data pipeline and one training pipeline per family to KFP IR YAML."""
    import filecmp
    import tempfile

    from pipelines.kubeflow.pipelines import compile_all

    get_settings.cache_clear()
    s = get_settings()
    if not check:
        for path in compile_all(s, out):
            console.print(f"wrote {path}", highlight=False)
        return
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_all(s, Path(tmp))
        stale = [p.name for p in fresh if not (out / p.name).exists() or not filecmp.cmp(p, out / p.name, False)]
    if stale:
        console.print(f"[bold red]error:[/] stale KFP pipelines: {', '.join(stale)}; run `shopflow kfp compile`",
                      highlight=False)
        raise typer.Exit(1)
    console.print(f"{len(fresh)} pipelines up to date in {out}", highlight=False)


@app.command("run")
def run(model: str = typer.Argument(..., help="Model family, e.g. churn."),
        local: bool = typer.Option(False, "--local", help="Run here with kfp.local (the only mode for now)."),
        batch_id: Optional[str] = typer.Option(None, "--batch-id", help="Landing batch (default: newest)."),
        set_: list[str] = typer.Option([], "--set", help="Hyper-parameter override key=value (repeatable)."),
        force: bool = typer.Option(False, help="Retrain even if these inputs were trained before.")) -> None:
    """Run the data pipeline, then the family's training pipeline (validate -> features -> train -> gate)."""
    from pipelines.cli_common import check_models, fail, parse_sets, validated_params
    from pipelines.kubeflow.pipelines import run_local

    if not local:
        fail("only --local runs are supported from the CLI; in a cluster, Airflow submits the compiled "
              "pipelines (SHOPFLOW_KFP__BACKEND=kfp)", 2)
    check_models([model])
    overrides = parse_sets(set_)
    validated_params(model, overrides)
    get_settings.cache_clear()
    out = run_local(get_settings(), model, batch_id or "", overrides, force)
    typer.echo(json.dumps(out))  # the last line: KFP's own log precedes it


@app.command("upload")
def upload(folder: Path = typer.Option(KFP_DIR, "--dir", help="Folder of the compiled pipelines to upload."),
           compile_first: bool = typer.Option(False, "--compile", help="Compile from the registry with the current "
                                                                       "settings (e.g. SHOPFLOW_KFP__IMAGE) and "
                                                                       "upload those instead."),
           host: Optional[str] = typer.Option(None, "--host", help="KFP API endpoint (default: SHOPFLOW_KFP__HOST).")
           ) -> None:
    """Upload every compiled pipeline to the KFP API: new pipelines are created, changed ones get a version named
    <package version>-<content hash>, unchanged ones are skipped."""
    from pipelines.cli_common import fail
    from pipelines.errors import UserError
    from pipelines.kubeflow.submit import KfpUnreachable
    from pipelines.kubeflow.upload import upload_all

    get_settings.cache_clear()
    s = get_settings()
    if host:
        s = s.model_copy(update={"kfp": s.kfp.model_copy(update={"host": host})})
    try:
        results = upload_all(s, folder, compile_first)
    except (UserError, KfpUnreachable) as exc:
        fail(str(exc))
    for r in results:
        console.print(f"{r['pipeline']}: {r['action']} ({r['version']})", highlight=False)
