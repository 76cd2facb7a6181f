"""Rollout lifecycle: start, analyse, ramp, promote, roll back, and the audited alias moves.

An experiment splits traffic of one model between the MLflow ``champion`` and ``challenger`` versions. The
challenger's share follows ``settings.rollout.ramp`` (e.g. 5% -> 25% -> 50%). :func:`step` is one evaluation of
the current ramp stage, as the Airflow DAG runs it every 15 minutes:

1. a guardrail breach (challenger error rate or p99 latency above its ceiling) or a sample-ratio mismatch ->
   roll back;
2. fewer than ``min_samples_per_arm`` units in an arm -> hold;
3. challenger significantly worse (always-valid mSPRT) -> roll back;
4. a guardrail's point estimate above its ceiling (not yet significant) -> hold for more data;
5. a later ramp weight exists -> ramp up to it;
6. last ramp weight and challenger significantly better -> promote (``champion`` alias moves);
7. otherwise hold.

Each stage is analysed on its own data (requests logged at the stage's weight since it began, and the outcomes
since then), so the split is a fixed, known ratio inside a stage and the SRM test is exact.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pipelines import tracking
from pipelines.rollout.stats import ArmStats, exceeds_rate, msprt, srm_test, welch_effect
from pipelines.rollout.store import (OUTCOME_KINDS, PROMOTED, ROLLED_BACK, RUNNING, ExperimentExists,
                                     get_store)

log = logging.getLogger(__name__)

P99_SHARE = 0.01
"""p99 <= L exactly when at most 1% of requests are slower than L."""


class RolloutError(RuntimeError):
    """A rollout command cannot proceed; the message says why and what to do (one line, no traceback)."""


def _require_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise RolloutError(f"actor must be a non-empty string, got {actor!r}")
    return actor


def _ramp(settings) -> list[float]:
    ramp = [float(w) for w in settings.rollout.ramp]
    if not ramp or any(not 0.0 < w < 1.0 for w in ramp) or any(b <= a for a, b in zip(ramp, ramp[1:])):
        raise RolloutError(f"rollout.ramp must be increasing challenger shares strictly between 0 and 1, got {ramp}")
    return ramp


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# ------------------------------------------------------------------ audited alias moves
def move_alias(settings, model: str, alias: str, version: str, actor: str, reason: str | None,
               client=None) -> str | None:
    """Point ``alias`` of ``model`` at ``version`` in MLflow and append the move to the alias history.

    Every alias change in ShopFlow (training registration, the offline gate, A/B promotion, restore) goes
    through here, so ``shopflow rollout history`` is complete. A move to the version the alias already holds is
    not a change and is not recorded.

    Returns:
        The version the alias held before (``None`` if it was unset).
    """
    client = client or tracking.configure(settings)
    previous = tracking.version_by_alias(client, model, alias)
    previous_version = str(previous.version) if previous is not None else None
    if previous_version == str(version):
        return previous_version
    client.set_registered_model_alias(model, alias, str(version))
    get_store(settings).log_alias_change(model, alias, str(version), previous_version, _require_actor(actor), reason)
    log.info("%s: alias %s %s -> %s by %s (%s)", model, alias, previous_version, version, actor, reason)
    return previous_version


# ------------------------------------------------------------------ start
def start(settings, model: str, actor: str = "cli", reason: str | None = None, metric: str = "purchase") -> dict:
    """Start an A/B experiment of ``model``'s challenger against its champion at the first ramp weight.

    Args:
        settings: Active settings.
        model: Registered model name (an MLflow registered model with ``champion`` and ``challenger`` aliases).
        actor: Who starts it (recorded).
        reason: Why (recorded).
        metric: Business metric of the decision: ``purchase`` (conversion, default), ``click`` or ``revenue``.

    Returns:
        The experiment's state row.

    Raises:
        RolloutError: no champion/challenger, both aliases on one version, or an experiment already running.
    """
    _require_actor(actor)
    if metric not in OUTCOME_KINDS:
        raise RolloutError(f"metric must be one of {', '.join(OUTCOME_KINDS)}, got {metric!r}")
    ramp = _ramp(settings)
    client = tracking.configure(settings)
    champion = tracking.version_by_alias(client, model, tracking.CHAMPION)
    challenger = tracking.version_by_alias(client, model, tracking.CHALLENGER)
    if champion is None:
        raise RolloutError(f"model {model!r} has no '{tracking.CHAMPION}' alias in MLflow: "
                           f"train it (shopflow train {model}) or restore a version first")
    if challenger is None:
        raise RolloutError(f"model {model!r} has no '{tracking.CHALLENGER}' alias in MLflow: train a new version first")
    if str(champion.version) == str(challenger.version):
        raise RolloutError(f"model {model!r}: champion and challenger are the same version "
                           f"(v{champion.version}); nothing to compare")
    store = get_store(settings)
    try:
        state = store.create_experiment(model, str(champion.version), str(challenger.version), metric, ramp[0],
                                        actor, reason)
    except ExperimentExists:
        running = store.running(model)
        which = running[0]["experiment_id"] if running else "?"
        raise RolloutError(f"model {model!r} already has a running experiment ({which}); "
                           f"promote or roll it back first") from None
    log.info("%s: started A/B %s: champion v%s vs challenger v%s at %.0f%%", model, state["experiment_id"],
             champion.version, challenger.version, 100 * ramp[0])
    return state


# ------------------------------------------------------------------ analysis
def analyze(settings, state: dict) -> dict:
    """Statistics, guardrails and the recommended action of a running experiment's current stage."""
    cfg = settings.rollout
    store = get_store(settings)
    eid, weight, metric = state["experiment_id"], float(state["weight"]), state["metric"]
    since = state["stage_started_at"]
    req = store.stage_requests(eid, weight, since, slow_ms=cfg.max_p99_latency_ms)
    sums = store.stage_metric(eid, weight, since, metric)
    control, treatment = ArmStats.from_sums(*sums["champion"]), ArmStats.from_sums(*sums["challenger"])
    srm = srm_test(req["champion"]["units"], req["challenger"]["units"], weight, cfg.srm_p_value)

    effect = sequential = None
    if control.n >= 2 and treatment.n >= 2:
        effect = welch_effect(control, treatment).to_dict()
        sequential = msprt(control, treatment, alpha=cfg.alpha).to_dict()
        # Always-valid p-value = running minimum over every look at this stage (earlier holds are looks too).
        earlier = [e["analysis"]["sequential"]["p_value"] for e in store.events(eid)
                   if e["action"] == "hold" and e["ts"] >= since and e["analysis"]
                   and (e["analysis"].get("sequential") or {}).get("p_value") is not None]
        sequential["always_valid_p"] = min([sequential["p_value"], *earlier])

    guardrails = {}
    for arm in ("champion", "challenger"):
        r = req[arm]
        err_breach, err_p = exceeds_rate(r["errors"], r["requests"], cfg.max_error_rate, cfg.alpha)
        lat_breach, lat_p = exceeds_rate(r["slow"], r["requests"], P99_SHARE, cfg.alpha)
        guardrails[arm] = {
            "requests": r["requests"], "errors": r["errors"],
            "error_rate": r["errors"] / r["requests"] if r["requests"] else None,
            "error_breach": err_breach, "error_p_value": err_p,
            "p99_latency_ms": r["p99_latency_ms"], "slower_than_ceiling": r["slow"],
            "latency_breach": lat_breach, "latency_p_value": lat_p,
        }
    analysis = {
        "experiment_id": eid, "model": state["model"], "metric": metric, "weight": weight,
        "stage": int(state["stage"]), "stage_started_at": since.isoformat(),
        "units": {"champion": control.n, "challenger": treatment.n},
        "requests": {arm: req[arm]["requests"] for arm in req},
        "means": {"champion": control.mean, "challenger": treatment.mean},
        "srm": srm.to_dict(), "effect": effect, "sequential": sequential, "guardrails": guardrails,
        "limits": {"alpha": cfg.alpha, "min_samples_per_arm": cfg.min_samples_per_arm,
                   "max_error_rate": cfg.max_error_rate, "max_p99_latency_ms": cfg.max_p99_latency_ms,
                   "srm_p_value": cfg.srm_p_value},
    }
    analysis["recommendation"] = _recommend(settings, analysis)
    return _clean(analysis)


def _recommend(settings, a: dict) -> dict:
    cfg = settings.rollout
    ramp = _ramp(settings)
    weight = a["weight"]
    later = [w for w in ramp if w > weight + 1e-12]
    g = a["guardrails"]["challenger"]
    if g["error_breach"]:
        return {"action": "rollback", "reason": f"guardrail: challenger error rate {g['error_rate']:.2%} "
                f"({g['errors']}/{g['requests']}) is above the {cfg.max_error_rate:.2%} ceiling"}
    if g["latency_breach"]:
        return {"action": "rollback", "reason": f"guardrail: challenger p99 latency {g['p99_latency_ms']:.0f} ms is "
                f"above the {cfg.max_p99_latency_ms:.0f} ms ceiling ({g['slower_than_ceiling']}/{g['requests']} "
                f"requests slower)"}
    srm = a["srm"]
    if srm["mismatch"]:
        return {"action": "rollback", "reason": f"sample ratio mismatch: {srm['champion']}/{srm['challenger']} units "
                f"for a {weight:.0%} challenger share (p={srm['p_value']:.2g}); assignment or logging is broken"}
    n_min = min(a["units"].values())
    if n_min < cfg.min_samples_per_arm:
        return {"action": "hold", "reason": f"waiting for samples: {a['units']['champion']} champion / "
                f"{a['units']['challenger']} challenger units, need {cfg.min_samples_per_arm} per arm"}
    seq, eff = a["sequential"], a["effect"]
    if seq and seq["significant"] and seq["diff"] < 0:
        return {"action": "rollback", "reason": f"challenger significantly worse on {a['metric']}: "
                f"{eff['treatment_mean']:.4g} vs {eff['control_mean']:.4g} "
                f"(always-valid p={seq['always_valid_p']:.2g})"}
    # Ramping or promoting also needs the guardrails' point estimates under their ceilings: a challenger whose
    # observed error rate or p99 is too high, but not yet significantly so, keeps collecting evidence here.
    unclear = []
    if g["error_rate"] is not None and g["error_rate"] > cfg.max_error_rate:
        unclear.append(f"error rate {g['error_rate']:.2%} > {cfg.max_error_rate:.2%}")
    if g["p99_latency_ms"] is not None and g["p99_latency_ms"] > cfg.max_p99_latency_ms:
        unclear.append(f"p99 {g['p99_latency_ms']:.0f} ms > {cfg.max_p99_latency_ms:.0f} ms")
    if unclear:
        return {"action": "hold", "reason": f"guardrails not clear yet ({'; '.join(unclear)}, not yet "
                f"significant): collecting more data"}
    if later:
        return {"action": "ramp", "next_weight": later[0], "reason": f"{n_min}+ units per arm at {weight:.0%}, "
                f"guardrails fine, not worse: ramp to {later[0]:.0%}"}
    if seq and seq["significant"] and seq["diff"] > 0:
        return {"action": "promote", "reason": f"challenger significantly better on {a['metric']}: "
                f"{eff['treatment_mean']:.4g} vs {eff['control_mean']:.4g}, lift {eff['lift'] or 0:+.1%} "
                f"(always-valid p={seq['always_valid_p']:.2g})"}
    p = seq["always_valid_p"] if seq else 1.0
    return {"action": "hold", "reason": f"at the final weight {weight:.0%}: no significant difference yet "
            f"(always-valid p={p:.2g} > {cfg.alpha})"}


def _running(settings, model: str) -> dict:
    running = get_store(settings).running(model)
    if not running:
        raise RolloutError(f"model {model!r} has no running experiment "
                           f"(start one with `shopflow rollout start {model}`)")
    return running[0]


def status(settings, model: str) -> dict:
    """The running (else latest) experiment of ``model``: state, weights, counts, SRM, effect, guardrails, advice.

    Raises:
        RolloutError: if ``model`` never had an experiment.
    """
    store = get_store(settings)
    state = store.latest(model)
    if state is None:
        raise RolloutError(f"model {model!r} has no experiment (start one with `shopflow rollout start {model}`)")
    analysis = analyze(settings, state) if state["status"] == RUNNING else state["analysis"]
    w = float(state["weight"])
    return _clean({
        "model": model, "experiment_id": state["experiment_id"], "status": state["status"],
        "champion_version": state["champion_version"], "challenger_version": state["challenger_version"],
        "metric": state["metric"], "weights": {"champion": 1.0 - w, "challenger": w}, "stage": state["stage"],
        "ramp": _ramp(settings), "started_at": state["started_at"].isoformat(), "actor": state["actor"],
        "ended_at": state["ended_at"].isoformat() if state["ended_at"] else None, "reason": state["reason"],
        "analysis": analysis,
        "recommendation": (analysis or {}).get("recommendation") if state["status"] == RUNNING else None,
        "weight_history": [e["weight"] for e in store.events(state["experiment_id"])
                           if e["action"] in ("start", "ramp")],
    })


# ------------------------------------------------------------------ step / promote / rollback
def step(settings, model: str, actor: str = "airflow") -> dict:
    """One ramp evaluation of ``model``'s running experiment (what the DAG runs on its schedule).

    Returns:
        ``{"model", "experiment_id", "action", "reason", "weight_before", "weight_after", "analysis"}``; action
        ``none`` when no experiment is running.
    """
    _require_actor(actor)
    store = get_store(settings)
    running = store.running(model)
    if not running:
        return {"model": model, "experiment_id": None, "action": "none", "reason": "no running experiment",
                "weight_before": None, "weight_after": None, "analysis": None}
    state = running[0]
    a = analyze(settings, state)
    rec = a["recommendation"]
    action, reason, before = rec["action"], rec["reason"], float(state["weight"])
    after = before
    if action == "rollback":
        rollback(settings, model, actor, reason, analysis=a)
    elif action == "promote":
        promote(settings, model, actor, reason, analysis=a)
    elif action == "ramp":
        after = rec["next_weight"]
        if not store.transition(state["experiment_id"], "ramp", actor, reason, a, expect_weight=before,
                                weight=after, stage=int(state["stage"]) + 1):
            action, after, reason = "none", before, "the experiment changed concurrently; nothing done"
    else:
        store.transition(state["experiment_id"], "hold", actor, reason, a)
    log.info("%s %s: %s (%s)", model, state["experiment_id"], action, reason)
    return {"model": model, "experiment_id": state["experiment_id"], "action": action, "reason": reason,
            "weight_before": before, "weight_after": after, "analysis": a}


def promote(settings, model: str, actor: str = "cli", reason: str | None = None,
            analysis: dict | None = None) -> dict:
    """End the running experiment by making its challenger version ``champion`` (recorded in alias history).

    Raises:
        RolloutError: no running experiment, or the MLflow alias could not be moved (the experiment then stays
            running).
    """
    _require_actor(actor)
    state = _running(settings, model)
    analysis = analysis if analysis is not None else analyze(settings, state)
    reason = reason or "promoted manually"
    eid, version = state["experiment_id"], state["challenger_version"]
    store = get_store(settings)
    if not store.transition(eid, "promote", actor, reason, analysis, status=PROMOTED):
        raise RolloutError(f"experiment {eid} was ended concurrently; nothing promoted")
    try:
        move_alias(settings, model, tracking.CHAMPION, version, actor,
                   f"A/B {eid}: {reason}")
    except Exception as exc:  # noqa: BLE001 - keep the experiment consistent with the registry, then report
        store.reopen(eid, f"promotion failed: {exc}")
        raise RolloutError(f"could not move {model} champion to v{version}: {exc}") from exc
    return {"model": model, "experiment_id": eid, "status": PROMOTED, "champion": version,
            "previous_champion": state["champion_version"], "reason": reason}


def rollback(settings, model: str, actor: str = "cli", reason: str | None = None,
             analysis: dict | None = None) -> dict:
    """End the running experiment, keeping the champion; all traffic returns to it at the routers' next refresh.

    Needs no MLflow call (works when the registry is down). The decision is appended to the alias history as a
    champion row with an unchanged version, so the history tells why the champion stayed.
    """
    _require_actor(actor)
    state = _running(settings, model)
    if analysis is None:
        try:
            analysis = analyze(settings, state)
        except Exception as exc:  # noqa: BLE001 - an emergency rollback must not depend on the analysis
            analysis = {"error": f"analysis failed: {exc}"}
    reason = reason or "rolled back manually"
    eid = state["experiment_id"]
    store = get_store(settings)
    if not store.transition(eid, "rollback", actor, reason, analysis, status=ROLLED_BACK):
        raise RolloutError(f"experiment {eid} was ended concurrently; nothing rolled back")
    store.log_alias_change(model, tracking.CHAMPION, state["champion_version"], state["champion_version"], actor,
                           f"A/B {eid} rolled back, challenger v{state['challenger_version']} rejected: {reason}")
    return {"model": model, "experiment_id": eid, "status": ROLLED_BACK, "champion": state["champion_version"],
            "rejected": state["challenger_version"], "reason": reason}


# ------------------------------------------------------------------ history / restore
def history(settings, model: str) -> list[dict]:
    """Every recorded alias change of ``model``, oldest first (ts, alias, version, previous, actor, reason)."""
    rows = get_store(settings).alias_history(model)
    return [{k: (v.isoformat() if k == "ts" else v) for k, v in r.items() if k != "id"} for r in rows]


def promote_manually(settings, model: str, version: str, actor: str, reason: str) -> dict:
    """Make ``version`` champion without the gate, for a deliberate change it cannot judge (e.g. a longer forecast
    horizon scored on another holdout). The reason is required and lands in the alias history.

    Raises:
        RolloutError: no reason, a running experiment, or no such version.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise RolloutError("a manual promotion needs --reason (it is recorded in the alias history)")
    return restore(settings, model, version, actor, f"manual promotion (gate bypassed): {reason.strip()}")


def restore(settings, model: str, version: str, actor: str = "cli", reason: str | None = None) -> dict:
    """Make an earlier registered ``version`` champion again (recorded in the alias history).

    Raises:
        RolloutError: an experiment is running (end it first), or the version does not exist.
    """
    from mlflow.exceptions import MlflowException

    _require_actor(actor)
    version = str(version).strip().removeprefix("v")
    if not version.isdigit():
        raise RolloutError(f"version must be a registry version number, got {version!r}")
    store = get_store(settings)
    running = store.running(model)
    if running:
        raise RolloutError(f"model {model!r} has a running experiment ({running[0]['experiment_id']}); "
                           f"roll it back before restoring a champion")
    client = tracking.configure(settings)
    try:
        client.get_model_version(model, version)
    except MlflowException:
        raise RolloutError(f"model {model!r} has no registered version {version} in MLflow") from None
    previous = move_alias(settings, model, tracking.CHAMPION, version, actor, reason or f"restored v{version}",
                          client=client)
    return {"model": model, "champion": version, "previous_champion": previous,
            "changed": previous != version}
