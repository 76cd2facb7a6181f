"""Generic train -> evaluate -> register -> gate pipeline shared by every model family.

The steps are plain functions so Airflow tasks, KFP components and the CLI call the same code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.registry import get_spec
from pipelines.settings import Settings
from pipelines.spec import DataContext
from pipelines import tracking
from pipelines.utils import git_commit, pick_device, seed_everything

log = logging.getLogger(__name__)

PROMOTION_MIN_DELTA = 0.002
"""A challenger must beat the champion by more than this on the primary metric (guards against noise)."""


class NoValidatedDataError(RuntimeError):
    """Training was asked for before any batch passed validation."""


def data_context(settings: Settings) -> DataContext:
    """Context over the last good batch (``CURRENT``); truth is attached when the generator left it."""
    batch_dir = settings.current_batch_dir()
    if batch_dir is None:
        raise NoValidatedDataError(
            f"no validated batch under {settings.batches_dir}; run `shopflow run` or `shopflow validate` first"
        )
    truth = settings.truth_dir / batch_dir.name
    return DataContext(settings=settings, batch_dir=batch_dir, batch_id=batch_dir.name,
                       truth_dir=truth if truth.exists() else None)


def fingerprint(model_name: str, batch_id: str, params: dict, feature_service: str, code: str) -> str:
    """Identity of a training run's inputs: same data, params, features and code => same model."""
    payload = json.dumps([model_name, batch_id, params, feature_service, code.removesuffix("-dirty")],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _validation_summary(batch_dir: Path) -> dict[str, Any]:
    report = batch_dir / "report.json"
    if not report.exists():
        return {}
    data = json.loads(report.read_text())
    return {k: data.get(k) for k in ("success", "evaluated", "row_counts") if k in data} | {
        "failed": len(data.get("failed", []))
    }


def train_model(model_name: str, settings: Settings, overrides: dict[str, Any] | None = None,
                force: bool = False) -> dict[str, Any]:
    """Train one family on the last good batch, log it to MLflow and register it as ``challenger``.

    Args:
        model_name: A family from the registry.
        settings: Active settings.
        overrides: Hyper-parameter overrides (validated by the family's params model).
        force: Retrain even when a version with the same fingerprint exists.

    Returns:
        A JSON-serialisable summary: metrics, baselines, oracle, version and registry state.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: figures are logged, never shown
    import matplotlib.pyplot as plt
    import mlflow

    spec = get_spec(model_name)
    params = spec.parse_params(overrides)
    ctx = data_context(settings)
    client = tracking.configure(settings)
    code = git_commit()
    fp = fingerprint(spec.name, ctx.batch_id, params.model_dump(), spec.feature_service, code)

    existing = None if force else tracking.find_version_by_fingerprint(client, spec.name, fp)
    if existing is not None:
        log.info("%s: version %s already trained from these inputs (fingerprint %s); nothing to do",
                 spec.name, existing.version, fp)
        run = client.get_run(existing.run_id)
        summary = json.loads(run.data.tags.get("shopflow.summary", "{}"))
        summary.update(reused=True, registry=tracking.registry_state(client, spec.name))
        return summary

    seed_everything(params.seed)
    device = pick_device()
    experiment_id = tracking.experiment_for(settings, spec.name)
    t0 = time.perf_counter()
    dataset = spec.prepare(ctx, params)
    t_prepare = time.perf_counter() - t0

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{ctx.batch_id}") as run:
        mlflow.set_tags({
            "shopflow.model": spec.name,
            "shopflow.feature_service": spec.feature_service,
            "shopflow.data_snapshot": ctx.batch_id,
            "shopflow.fingerprint": fp,
            "shopflow.truth": "generator" if ctx.truth_dir else "none",
            "mlflow.source.git.commit": code,
            "shopflow.device": device,
        })
        mlflow.log_params(params.model_dump() | {"feature_service": spec.feature_service,
                                                 "data_snapshot": ctx.batch_id, "device": device})
        gx = _validation_summary(ctx.batch_dir)
        if gx:
            mlflow.log_dict(gx, "lineage/validation.json")
            mlflow.set_tag("shopflow.validation", "passed" if gx.get("success") else "unknown")

        t1 = time.perf_counter()
        model = spec.fit(dataset, params)
        t_fit = time.perf_counter() - t1
        ev = spec.evaluate(model, dataset, params)
        if ev.extra_params:
            mlflow.log_params(ev.extra_params)
        metrics = dict(ev.metrics)
        metrics.update({f"baseline_{k}_{spec.primary_metric}": v for k, v in ev.baselines.items()})
        if ev.oracle is not None:
            metrics[f"oracle_{spec.primary_metric}"] = ev.oracle
        metrics.update(prepare_seconds=t_prepare, fit_seconds=t_fit)
        mlflow.log_metrics(metrics)
        for fname, fig in ev.figures.items():
            mlflow.log_figure(fig, f"plots/{fname}")
            plt.close(fig)

        info = spec.log_model(model, dataset)
        mv = mlflow.register_model(info.model_uri, spec.name, tags={"shopflow.fingerprint": fp,
                                                                    "shopflow.data_snapshot": ctx.batch_id})
        version = str(mv.version)
        # Through the audited path, so `shopflow rollout history` shows every alias move.
        from pipelines.rollout.lifecycle import move_alias

        move_alias(settings, spec.name, tracking.CHALLENGER, version, "training",
                   f"registered v{version} trained on batch {ctx.batch_id}", client=client)
        best_baseline = (max if spec.higher_is_better else min)(ev.baselines.items(), key=lambda kv: kv[1])
        summary = {
            "model": spec.name,
            "metric": spec.primary_metric,
            "value": float(ev.metrics[spec.primary_metric]),
            "metrics": {k: float(v) for k, v in ev.metrics.items()},
            "baseline_name": best_baseline[0],
            "baseline": float(best_baseline[1]),
            "baselines": {k: float(v) for k, v in ev.baselines.items()},
            "oracle": ev.oracle,
            "version": version,
            "run_id": run.info.run_id,
            "data_snapshot": ctx.batch_id,
            "fit_seconds": round(t_fit, 2),
        }
        mlflow.set_tag("shopflow.summary", json.dumps(summary))
        log.info("%s v%s registered as %s: %s=%.4f (best baseline %s=%.4f, oracle %s)", spec.name, version,
                 tracking.CHALLENGER, spec.primary_metric, summary["value"], best_baseline[0], best_baseline[1],
                 "n/a" if ev.oracle is None else f"{ev.oracle:.4f}")
    summary.update(reused=False, registry=tracking.registry_state(client, spec.name))
    return summary


def apply_gate_decision(settings: Settings, client, model_name: str, decision: tracking.GateDecision) -> str:
    """Move ``champion`` as the gate decided, honouring ``settings.promotion``; returns the verdict tag.

    ``offline``: a winning version becomes champion. ``ab``: it does only when there is no champion yet;
    otherwise it stays ``challenger`` (``decision`` is updated to say so) until an A/B rollout promotes it.
    The move is recorded in the rollout alias history.
    """
    if decision.promoted and settings.promotion == "ab" and decision.champion_version is not None:
        # An offline win only qualifies the version; live traffic decides (`shopflow rollout start`).
        decision.promoted = False
        decision.reason += "; promotion=ab: stays challenger until an A/B rollout promotes it"
        return "awaiting A/B"
    if decision.promoted:
        from pipelines.rollout.lifecycle import move_alias

        move_alias(settings, model_name, tracking.CHAMPION, decision.challenger_version, "training-gate",
                   decision.reason, client=client)
        return "promoted"
    return "not promoted"


def evaluate_and_promote(model_name: str, settings: Settings, version: str,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Champion/challenger gate: score the registered ``version`` and the current champion on the same holdout.

    Both models are loaded back from the registry with their native flavor, so the gate also proves the
    registered artifact works. ``version`` becomes ``champion`` only if it wins by more than
    :data:`PROMOTION_MIN_DELTA`; the decision and its reason are logged to the version's run and tags. With
    ``settings.promotion == "ab"`` a winner only replaces the champion when there is none yet; otherwise it stays
    ``challenger`` for an A/B rollout. Alias moves are recorded in the rollout alias history.

    Returns:
        The gate decision as a dict, plus the registry state after it.
    """
    import mlflow

    spec = get_spec(model_name)
    params = spec.parse_params(overrides)
    ctx = data_context(settings)
    client = tracking.configure(settings)
    seed_everything(params.seed)
    dataset = spec.prepare(ctx, params)
    challenger_score = float(spec.score(spec.load_model(f"models:/{spec.name}/{version}"), dataset))
    champion = tracking.version_by_alias(client, spec.name, tracking.CHAMPION)
    champion_score = None
    if champion is not None and champion.version != version:
        champion_score = float(spec.score(spec.load_model(f"models:/{spec.name}/{champion.version}"), dataset))
    elif champion is not None:
        champion_score = challenger_score
    decision = tracking.decide(spec, version, challenger_score, champion.version if champion else None,
                               champion_score, PROMOTION_MIN_DELTA)
    verdict = apply_gate_decision(settings, client, spec.name, decision)
    client.set_model_version_tag(spec.name, version, "shopflow.gate", verdict)
    client.set_model_version_tag(spec.name, version, "shopflow.gate_reason", decision.reason)
    run_id = client.get_model_version(spec.name, version).run_id
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(decision.to_dict(), "gate/decision.json")
        mlflow.set_tags({"shopflow.gate": verdict, "shopflow.gate_reason": decision.reason})
    log.info("%s v%s %s: %s", spec.name, version, verdict.upper(), decision.reason)
    return {"gate": decision.to_dict(), "registry": tracking.registry_state(client, spec.name)}


def run_summary(settings: Settings, model_name: str) -> dict[str, Any] | None:
    """Report row of one family: champion's metric, best baseline, oracle, registry version and alias."""
    spec = get_spec(model_name)
    client = tracking.configure(settings)
    mv = (tracking.version_by_alias(client, spec.name, tracking.CHAMPION)
          or tracking.version_by_alias(client, spec.name, tracking.CHALLENGER))
    if mv is None:
        return None
    summary = json.loads(client.get_run(mv.run_id).data.tags.get("shopflow.summary", "{}"))
    state = tracking.registry_state(client, spec.name)
    aliases = [a for a in (tracking.CHAMPION, tracking.CHALLENGER) if state.get(a) == str(mv.version)]
    return {
        "model": spec.name,
        "metric": spec.primary_metric,
        "value": summary.get("value"),
        "baseline": summary.get("baseline"),
        "baseline_name": summary.get("baseline_name"),
        "oracle": summary.get("oracle"),
        "version": str(mv.version),
        "alias": ",".join(aliases),
        "versions": state["versions"],
        "gate_reason": mv.tags.get("shopflow.gate_reason"),
        "data_snapshot": summary.get("data_snapshot"),
    }
