"""``shopflow rollout ...``: start, watch, step, promote, roll back and audit A/B rollouts."""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import Settings, get_settings

app = typer.Typer(help="A/B rollout of a challenger version against the champion.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 160)

ACTOR = typer.Option(None, "--actor", help="Who does this (recorded); default cli:<user>.")
REASON = typer.Option(None, "--reason", help="Why (recorded in the history).")


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def _actor(actor: Optional[str]) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "cli"


@contextlib.contextmanager
def _errors():
    """Known failures become one red line and exit code 1 (never a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.rollout.lifecycle import RolloutError

    try:
        yield
    except (RolloutError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[bold red]error:[/] {message}", highlight=False)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        console.print(f"[bold red]error:[/] rollout store unavailable: {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # MLflow registry errors and the like: still one line
        if type(exc).__name__ != "MlflowException":
            raise
        console.print(f"[bold red]error:[/] MLflow: {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(1) from None


def _fmt(value, pattern: str = "{:.4g}") -> str:
    return "-" if value is None else pattern.format(value)


def _print_status(st: dict) -> None:
    console.print(f"[bold]{st['model']}[/] experiment [bold]{st['experiment_id']}[/] ({st['status']}): "
                  f"champion v{st['champion_version']} vs challenger v{st['challenger_version']}, "
                  f"metric {st['metric']}, challenger share {st['weights']['challenger']:.0%} "
                  f"(ramp {' -> '.join(f'{w:.0%}' for w in st['ramp'])}; so far "
                  f"{' -> '.join(f'{w:.0%}' for w in st['weight_history'])})", highlight=False)
    a = st.get("analysis") or {}
    if a.get("units"):
        g = a["guardrails"]
        table = Table(title=f"stage {a['stage'] + 1} at {a['weight']:.0%}, since {a['stage_started_at']}")
        for col in ("arm", "units", "requests", f"mean {a['metric']}", "error rate", "p99 ms"):
            table.add_column(col, justify="right" if col != "arm" else "left")
        for arm in ("champion", "challenger"):
            table.add_row(arm, str(a["units"][arm]), str(a["requests"][arm]), _fmt(a["means"][arm]),
                          _fmt(g[arm]["error_rate"], "{:.2%}"), _fmt(g[arm]["p99_latency_ms"], "{:.0f}"))
        console.print(table)
        srm = a["srm"]
        console.print(f"SRM: chi2={srm['chi2']:.2f} p={srm['p_value']:.3g} "
                      f"{'[red]MISMATCH[/]' if srm['mismatch'] else 'ok'}", highlight=False)
        if a.get("effect"):
            e, s = a["effect"], a["sequential"]
            lift = "" if e["lift"] is None else f", lift {e['lift']:+.1%}"
            console.print(f"effect (challenger - champion): {e['diff']:+.4g} "
                          f"[95% Welch CI {e['ci_low']:+.4g}, {e['ci_high']:+.4g}]{lift}", highlight=False)
            console.print(f"sequential (mSPRT): always-valid p={s['always_valid_p']:.3g}, confidence sequence "
                          f"[{_fmt(s['cs_low'], '{:+.4g}')}, {_fmt(s['cs_high'], '{:+.4g}')}]", highlight=False)
    rec = st.get("recommendation") or a.get("recommendation")
    if st["status"] == "running" and rec:
        console.print(f"recommendation: [bold]{rec['action']}[/] - {rec['reason']}", highlight=False)
    elif st["status"] != "running":
        console.print(f"ended {st['ended_at']}: {st['reason']}", highlight=False)


@app.command()
def start(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
          metric: str = typer.Option("purchase", help="Decision metric: purchase, click or revenue."),
          actor: Optional[str] = ACTOR, reason: Optional[str] = REASON) -> None:
    """Start an A/B experiment: challenger gets the first ramp share of traffic."""
    from pipelines.rollout import lifecycle

    with _errors():
        st = lifecycle.start(_settings(), model, _actor(actor), reason, metric=metric)
    console.print(f"started [bold]{st['experiment_id']}[/]: champion v{st['champion_version']} vs challenger "
                  f"v{st['challenger_version']} at {st['weight']:.0%} challenger traffic", highlight=False)


@app.command()
def status(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Weights, counts per arm, SRM, effect + CI, always-valid p, guardrails and the recommendation."""
    from pipelines.rollout import lifecycle

    with _errors():
        st = lifecycle.status(_settings(), model)
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
    else:
        _print_status(st)


@app.command()
def step(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
         actor: Optional[str] = ACTOR,
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """One ramp evaluation (as the DAG runs it): roll back, ramp, promote or hold."""
    from pipelines.rollout import lifecycle

    with _errors():
        out = lifecycle.step(_settings(), model, _actor(actor))
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    weights = ""
    if out["weight_before"] is not None:
        weights = f" ({out['weight_before']:.0%} -> {out['weight_after']:.0%})"
    console.print(f"{model}: [bold]{out['action']}[/]{weights} - {out['reason']}", highlight=False)


@app.command()
def promote(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
            actor: Optional[str] = ACTOR, reason: Optional[str] = REASON) -> None:
    """End the experiment now and make the challenger version champion."""
    from pipelines.rollout import lifecycle

    with _errors():
        out = lifecycle.promote(_settings(), model, _actor(actor), reason)
    console.print(f"{model}: champion v{out['previous_champion']} -> v{out['champion']} ({out['experiment_id']})",
                  highlight=False)


@app.command()
def rollback(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
             actor: Optional[str] = ACTOR, reason: Optional[str] = REASON) -> None:
    """End the experiment now; all traffic goes back to the unchanged champion."""
    from pipelines.rollout import lifecycle

    with _errors():
        out = lifecycle.rollback(_settings(), model, _actor(actor), reason)
    console.print(f"{model}: rolled back {out['experiment_id']}; champion stays v{out['champion']}, "
                  f"challenger v{out['rejected']} rejected", highlight=False)


@app.command()
def history(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every alias change of the model: when, which alias, from/to which version, who and why."""
    from pipelines.rollout import lifecycle

    with _errors():
        rows = lifecycle.history(_settings(), model)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        console.print(f"{model}: no alias changes recorded")
        return
    table = Table(title=f"{model}: alias history")
    for col in ("when (UTC)", "alias", "from", "to", "actor", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["ts"][:19].replace("T", " "), r["alias"], _fmt(r["previous_version"], "v{}"),
                      _fmt(r["version"], "v{}"), r["actor"], r["reason"] or "")
    console.print(table)


@app.command()
def restore(model: str = typer.Argument(..., help="Registered model, e.g. churn."),
            version: str = typer.Argument(..., help="Registry version to make champion again, e.g. 3."),
            actor: Optional[str] = ACTOR, reason: Optional[str] = REASON) -> None:
    """Make an earlier version champion again (e.g. after a bad promotion)."""
    from pipelines.rollout import lifecycle

    with _errors():
        out = lifecycle.restore(_settings(), model, version, _actor(actor), reason)
    if out["changed"]:
        console.print(f"{model}: champion v{out['previous_champion']} -> v{out['champion']}", highlight=False)
    else:
        console.print(f"{model}: v{out['champion']} already is the champion; nothing changed", highlight=False)
