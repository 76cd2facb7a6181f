"""Generic train -> evaluate -> register -> gate pipeline shared by every model family.

The steps are plain functions so Airflow tasks, KFP components and the CLI call the same code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import objectstore, promotion, tracking
from pipelines.errors import UserError
from pipelines.faults import fault_point
from pipelines.features.snapshot import current_batch_dir
from pipelines.monitoring.reference import log_reference
from pipelines.registry import get_spec
from pipelines.settings import Settings
from pipelines.spec import DataContext
from pipelines.utils import code_fingerprint, git_commit, pick_device, seed_everything

log = logging.getLogger(__name__)


class NoValidatedDataError(UserError, RuntimeError):
    """Training was asked for before any batch passed validation."""


class StaleVersionError(UserError, RuntimeError):
    """The gate cannot judge a version on the batch it was trained on (it predates feature snapshots)."""


def data_context(settings: Settings) -> DataContext:
    """Context over the last good batch (``CURRENT``); truth is attached when the generator left it."""
    batch_dir = current_batch_dir(settings)
    if batch_dir is None:
        raise NoValidatedDataError(
            f"no validated batch under {settings.batches_dir}; run `shopflow run` or `shopflow validate` first"
        )
    truth = settings.truth_dir / batch_dir.name
    return DataContext(settings=settings, batch_dir=batch_dir, batch_id=batch_dir.name,
                       truth_dir=truth if objectstore.pull_dir(settings, truth) else None)


def pin_current(settings: Settings) -> Settings:
    """``settings`` pinned to CURRENT's batch and feature snapshot for the whole run (a data run switching CURRENT
    meanwhile cannot mix one batch's labels with another's features).

    Raises:
        NoValidatedDataError: nothing is current yet, or CURRENT predates feature snapshots.
    """
    from pipelines.features.snapshot import NoFeatureSnapshotError, pinned

    try:
        return pinned(settings)
    except NoFeatureSnapshotError as exc:
        raise NoValidatedDataError(f"{exc}; run `shopflow run` (or the shopflow_data DAG) first") from exc


def fingerprint(model_name: str, batch_id: str, params: dict, feature_service: str, code: str,
                features: str = "") -> str:
    """Identity of a training run's inputs: same data, features, params and code => same model."""
    payload = json.dumps([model_name, batch_id, params, feature_service, code, features], sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _validation_summary(batch_dir: Path) -> dict[str, Any]:
    report = batch_dir / "report.json"
    if not report.exists():
        return {}
    data = json.loads(report.read_text())
    return {k: data.get(k) for k in ("success", "evaluated", "row_counts") if k in data} | {
        "failed": len(data.get("failed", []))
    }


class _Terminated(SystemExit):
    """SIGTERM during training (Airflow killing the task, a supervisor stopping the CLI)."""


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into an exception while training, so the MLflow run is ended KILLED instead of staying
    RUNNING (the default SIGTERM action ends the process without any cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log_units(frames: dict[str, pd.DataFrame]) -> None:
    """Per-unit holdout frames as run artifacts (``holdout/<name>.parquet``): the gate's evidence."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in frames.items():
            path = Path(tmp) / f"{name}.parquet"
            frame.to_parquet(path)
            mlflow.log_artifact(str(path), artifact_path="holdout")


SERVING_INPUTS = "serving_inputs"
"""Run artifact folder of the raw tables a family's server reads beside its model (``ServingSpec.inputs``)."""


def _log_serving_inputs(spec, ctx: DataContext) -> None:
    """The batch's files of the tables the family's server reads (those the batch has), with the run."""
    import mlflow

    from pipelines.data.io import table_path

    for table in spec.serving.inputs if spec.serving is not None else ():
        path = table_path(ctx.batch_dir, table)
        if path is not None:
            mlflow.log_artifact(str(path), artifact_path=SERVING_INPUTS)


def train_model(model_name: str, settings: Settings, overrides: dict[str, Any] | None = None,
                force: bool = False) -> dict[str, Any]:
    """Train one family on the last good batch, log it to MLflow and register it as ``challenger``.

    Crash safety: the MLflow run ends FAILED on an error and KILLED on SIGTERM (a kill -9 is reaped by the next
    call); the version is registered only after the run finished, and marked complete (tag
    ``shopflow.fingerprint``) only after its alias moved. A version that never got that far is deleted by the next
    call, and is never reused, so a failed or interrupted run registers nothing and never blocks a retrain.

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
    spec.parse_params(overrides)  # a bad override fails before anything else
    settings = pin_current(settings)
    ctx = data_context(settings)
    client = tracking.configure(settings)
    params = family_params(spec, client, overrides)
    experiment_id = tracking.experiment_for(settings, spec.name)
    tracking.reap_interrupted_runs(client, experiment_id)
    tracking.drop_incomplete_versions(client, spec.name)
    commit = git_commit()
    fp = fingerprint(spec.name, ctx.batch_id, params.model_dump(), spec.feature_service,
                     code_fingerprint(spec.name), settings.feature_snapshot)

    existing = None if force else tracking.find_version_by_fingerprint(client, spec.name, fp)
    if existing is not None:
        log.info("%s: version %s already trained from these inputs (fingerprint %s); nothing to do",
                 spec.name, existing.version, fp)
        summary = json.loads(client.get_run(existing.run_id).data.tags["shopflow.summary"])
        summary.update(version=str(existing.version), reused=True,
                       registry=tracking.registry_state(client, spec.name))
        return summary

    seed_everything(params.seed)
    device = pick_device()
    t0 = time.perf_counter()
    dataset = spec.prepare(ctx, params)
    t_prepare = time.perf_counter() - t0

    with _sigterm_raises():
        run = mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{ctx.batch_id}")
        try:
            mlflow.set_tags({
                "shopflow.model": spec.name,
                "shopflow.feature_service": spec.feature_service,
                "shopflow.data_snapshot": ctx.batch_id,
                "shopflow.feature_snapshot": settings.feature_snapshot,
                "shopflow.fingerprint": fp,
                "shopflow.truth": "generator" if ctx.truth_dir else "none",
                "mlflow.source.git.commit": commit,
                "shopflow.device": device,
                **tracking.process_tags(),
            })
            mlflow.log_params(params.model_dump() | {"feature_service": spec.feature_service,
                                                     "data_snapshot": ctx.batch_id, "device": device})
            gx = _validation_summary(ctx.batch_dir)
            if gx:
                mlflow.log_dict(gx, "lineage/validation.json")
                mlflow.set_tag("shopflow.validation", "passed" if gx.get("success") else "unknown")

            fault_point("train:fit")
            t1 = time.perf_counter()
            model = spec.fit(dataset, params)
            t_fit = time.perf_counter() - t1
            ev = spec.evaluate(model, dataset, params)
            if ev.extra_params:
                mlflow.log_params(ev.extra_params)
            metrics = dict(ev.metrics)
            metrics.update({f"baseline_{k}_{spec.primary_metric}": v for k, v in ev.baselines.items()})
            metrics.update({f"val_{k}_{spec.primary_metric}": v for k, v in ev.selection.items()})
            if ev.oracle is not None:
                metrics[f"oracle_{spec.primary_metric}"] = ev.oracle
            metrics.update(prepare_seconds=t_prepare, fit_seconds=t_fit)
            mlflow.log_metrics(metrics)
            missing = sorted(set(ev.baselines) - set(ev.units))
            if missing:
                raise ValueError(f"{spec.name}: evaluate() gave no per-unit holdout frame for baseline(s) "
                                 f"{', '.join(missing)}; the gate needs one per baseline")
            _log_units({**ev.units, "model": spec.holdout(model, dataset)})
            for fname, fig in ev.figures.items():
                mlflow.log_figure(fig, f"plots/{fname}")
                plt.close(fig)
            _log_contributions(spec, model, dataset)
            # The monitoring reference: the features this version was trained on (a seeded sample), for drift.
            reference_rows = log_reference(settings, spec.feature_service)
            mlflow.log_metric("monitoring_reference_rows", reference_rows)

            info = spec.log_model(model, dataset)
            _log_serving_inputs(spec, ctx)
            fault_point("train:logged")
            # The best *other* baseline: when a baseline won the selection, it is the registered model itself.
            others = {k: v for k, v in ev.baselines.items() if k != ev.candidate} or ev.baselines
            best_baseline = (max if spec.higher_is_better else min)(others.items(), key=lambda kv: kv[1])
            summary = {
                "model": spec.name,
                "metric": spec.primary_metric,
                "value": _finite(ev.metrics[spec.primary_metric]),
                "metrics": {k: _finite(v) for k, v in ev.metrics.items()},
                "candidate": ev.candidate,
                "selection": {k: _finite(v) for k, v in ev.selection.items()},
                "baseline_name": best_baseline[0],
                "baseline": _finite(best_baseline[1]),
                "baselines": {k: _finite(v) for k, v in ev.baselines.items()},
                "oracle": None if ev.oracle is None else _finite(ev.oracle),
                "run_id": run.info.run_id,
                "data_snapshot": ctx.batch_id,
                "fit_seconds": round(t_fit, 2),
            }
            mlflow.set_tags({"shopflow.summary": json.dumps(summary), "shopflow.candidate": ev.candidate})
        except BaseException as exc:
            mlflow.end_run("KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED")
            raise
        mlflow.end_run("FINISHED")
        fault_point("train:finished")
        version = register_complete(settings, client, spec.name, info.model_uri, fp, ctx.batch_id,
                                    settings.feature_snapshot, reason=f"trained on batch {ctx.batch_id}")
    fault_point("train:registered")
    summary["version"] = version
    client.set_tag(run.info.run_id, "shopflow.summary", json.dumps(summary))
    log.info("%s v%s registered as %s (candidate %s): %s=%.4f (best baseline %s=%.4f, oracle %s)", spec.name,
             version, tracking.CHALLENGER, ev.candidate, spec.primary_metric, float(ev.metrics[spec.primary_metric]), best_baseline[0],
             best_baseline[1], "n/a" if ev.oracle is None else f"{ev.oracle:.4f}")
    summary.update(reused=False, registry=tracking.registry_state(client, spec.name))
    return summary


def _finite(value: Any) -> float | None:
    """A metric for the JSON summary (Airflow XCom, KFP outputs, tags): NaN or infinity (e.g. an empty calibration
    decile) becomes ``null`` instead of invalid JSON."""
    import math

    v = float(value)
    return v if math.isfinite(v) else None


def _log_contributions(spec, model, dataset) -> None:
    """The version's feature-contribution summary plot (TreeSHAP / linear terms on the holdout), if it has one."""
    if spec.contributions is None:
        return
    import matplotlib.pyplot as plt
    import mlflow

    from pipelines.explain import NotExplainable, summary_figure

    try:
        contribs, inputs = spec.contributions(model, dataset)
    except NotExplainable as exc:
        log.info("%s: no contribution plot (%s)", spec.name, exc)
        mlflow.set_tag("shopflow.explainable", f"no: {exc}"[:250])
        return
    fig = summary_figure(contribs, inputs)
    mlflow.log_figure(fig, "plots/shap_summary.png")
    plt.close(fig)
    mlflow.set_tag("shopflow.explainable", "yes")


def family_params(spec, client, overrides: dict[str, Any] | None = None):
    """The family's parameters: its defaults, then the tuned ones (``shopflow tune``), then explicit overrides.

    Tuned parameters the family no longer has (renamed since tuning) are dropped with a warning, never an error.
    """
    known = set(spec.params.model_fields)
    tuned = tracking.tuned_params(client, spec.name)
    stale = sorted(set(tuned) - known)
    if stale:
        log.warning("%s: ignoring tuned parameter(s) the family no longer has: %s", spec.name, ", ".join(stale))
    return spec.parse_params({**{k: v for k, v in tuned.items() if k in known}, **(overrides or {})})


def register_complete(settings: Settings, client, model_name: str, model_uri: str, fingerprint: str,
                      batch_id: str, feature_snapshot: str | None, reason: str) -> str:
    """Register ``model_uri`` as a new version, point ``challenger`` at it and only then mark it complete.

    Any failure on the way deletes the new version again (a failed run registers nothing); a kill leaves an
    incomplete version that :func:`pipelines.tracking.drop_incomplete_versions` removes.

    Returns:
        The new version.
    """
    import mlflow

    from pipelines.rollout.lifecycle import move_alias

    from pipelines.faults import fault_point

    mv = mlflow.register_model(model_uri, model_name, tags={"shopflow.data_snapshot": batch_id,
                                                             "shopflow.feature_snapshot": feature_snapshot or ""})
    version = str(mv.version)
    try:
        fault_point("register:created")
        # Through the audited path, so `shopflow rollout history` shows every alias move.
        move_alias(settings, model_name, tracking.CHALLENGER, version, "training", f"registered v{version} {reason}",
                   client=client)
        fault_point("register:aliased")
        client.set_model_version_tag(model_name, version, tracking.COMPLETE_TAG, fingerprint)
    except BaseException:
        client.delete_model_version(model_name, version)
        raise
    return version


def apply_gate_decision(settings: Settings, client, model_name: str, decision: promotion.GateDecision) -> str:
    """Move ``champion`` as the gate decided, honouring ``settings.promotion``; returns the verdict tag.

    ``offline``: a winning version becomes champion. ``ab``: it does only when there is no champion yet;
    otherwise it stays ``challenger`` (``decision`` is updated to say so) until an A/B rollout promotes it.
    ``approve``: it waits for a person's approval (:mod:`pipelines.approval`).
    The move is recorded in the rollout alias history.
    """
    if decision.promoted and settings.promotion == "approve":
        from pipelines import approval

        # The gate's evidence goes with the version; a person moves the alias (or keeps it).
        decision.promoted = False
        evidence = decision.reason
        decision.reason += "; promotion=approve: awaits a person's approval"
        return approval.request(client, model_name, decision.challenger_version, evidence)
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
    """The champion gate: the registered ``version`` against the best baseline and the champion, on one holdout.

    The challenger and the champion are loaded back from the registry with their native flavor (so the gate also
    proves the registered artifact works) and scored per holdout unit; the baselines' per-unit results come from
    the version's training run. ``version`` becomes ``champion`` only if its improvement over the best baseline and
    over the champion holds up in a paired bootstrap (:mod:`pipelines.promotion`) — the first version too. With
    ``settings.promotion == "ab"`` a winner only replaces the champion when there is none yet; otherwise it stays
    ``challenger`` for an A/B rollout. The decision is logged to the version's run and tags; alias moves are
    recorded in the alias history.

    Raises:
        StaleVersionError: the version records no feature snapshot (registered before snapshots existed).

    Returns:
        The gate decision as a dict, plus the registry state after it.
    """
    spec = get_spec(model_name)
    client = tracking.configure(settings)
    params = family_params(spec, client, overrides)  # as training prepared the data
    mv = client.get_model_version(spec.name, version)
    # Judged on the batch and features it was trained on (its baselines' per-unit results are on that holdout),
    # even if CURRENT moved since.
    snapshot = mv.tags.get("shopflow.feature_snapshot")
    if not snapshot:
        raise StaleVersionError(f"{spec.name} v{version} records no feature snapshot (trained before snapshots "
                                f"existed); train again (`shopflow train {spec.name}`) to judge a new version")
    settings = settings.model_copy(update={"feature_snapshot": snapshot})
    ctx = data_context(settings)
    seed_everything(params.seed)
    dataset = spec.prepare(ctx, params)
    champion = tracking.version_by_alias(client, spec.name, tracking.CHAMPION)
    champion_version = str(champion.version) if champion is not None else None
    candidate = client.get_run(mv.run_id).data.tags.get("shopflow.candidate", "model")

    def units(v: str) -> pd.DataFrame:
        return spec.holdout(spec.load_model(f"models:/{spec.name}/{v}"), dataset)

    unloadable = None
    if champion_version not in (None, version):
        try:  # a champion the current code cannot load (e.g. pickled by an older layout) cannot serve either
            spec.load_model(f"models:/{spec.name}/{champion_version}")
        except Exception as exc:  # noqa: BLE001 - judged against the baselines alone, and said so
            log.warning("%s: champion v%s cannot be loaded (%s); judging v%s against the baselines only",
                        spec.name, champion_version, exc, version)
            unloadable = f"champion v{champion_version} cannot be loaded ({type(exc).__name__}: {exc})"
            champion_version = None
    challenger = units(version)
    decision = promotion.decide(
        metric_name=spec.primary_metric, metric=spec.metric, higher_is_better=spec.higher_is_better,
        challenger_version=version, challenger=challenger, candidate=candidate,
        baselines=tracking.load_units(client, mv.run_id, exclude="model"),
        champion_version=champion_version,
        champion=None if champion_version in (None, version) else units(champion_version),
        samples=settings.gate.samples, confidence=settings.gate.confidence, seed=settings.gate.seed,
        min_units=settings.gate.min_units)
    if unloadable:
        decision.reason += f"; {unloadable}"
    fault_point("gate:decided")
    verdict = apply_gate_decision(settings, client, spec.name, decision)
    fault_point("gate:applied")
    client.set_model_version_tag(spec.name, version, "shopflow.gate", verdict)
    client.set_model_version_tag(spec.name, version, "shopflow.gate_reason", decision.reason)
    client.log_dict(mv.run_id, decision.to_dict(), "gate/decision.json")
    client.set_tag(mv.run_id, "shopflow.gate", verdict)
    client.set_tag(mv.run_id, "shopflow.gate_reason", decision.reason)
    log.info("%s v%s %s: %s", spec.name, version, verdict.upper(), decision.reason)
    return {"gate": {**decision.to_dict(), "verdict": verdict}, "registry": tracking.registry_state(client, spec.name)}


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
        "candidate": summary.get("candidate", "model"),
        "version": str(mv.version),
        "alias": ",".join(aliases),
        "versions": state["versions"],
        "gate_reason": mv.tags.get("shopflow.gate_reason"),
        "data_snapshot": summary.get("data_snapshot"),
        "tuned_params": tracking.tuned_params(client, spec.name),
    }
