"""A/B rollout of a challenger model version against the champion.

What the serving side uses (no MLflow import, no connection until first use)::

    router = Router(settings, "churn")
    a = router.assign(customer_id)              # sticky arm + experiment id + versions
    ...serve with the version of ``a.arm``...
    router.log_request(customer_id, a, served_version, latency_ms, error=None)
    record_outcome(settings, "churn", customer_id, "purchase")   # later, from the shop's event stream

Lifecycle (``start``/``status``/``step``/``promote``/``rollback``/``history``/``restore``) lives in
:mod:`pipelines.rollout.lifecycle` and is re-exported here; statistics in :mod:`pipelines.rollout.stats`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from pipelines.rollout.assign import CHAMPION_ARM, arm_for
from pipelines.rollout.lifecycle import (RolloutError, history, promote, restore, rollback, start, status, step)
from pipelines.rollout.store import OUTCOME_KINDS, _require_number, get_store

log = logging.getLogger(__name__)

__all__ = ["Assignment", "Router", "RolloutError", "current_weights", "history", "promote", "record_outcome",
           "restore", "rollback", "start", "status", "step"]


@dataclass(frozen=True)
class Assignment:
    """Which arm serves a unit, and under which experiment."""

    arm: Literal["champion", "challenger"]
    experiment_id: str | None
    """``None`` when no experiment is running (everyone gets the champion, nothing is logged)."""
    challenger_weight: float
    champion_version: str | None
    challenger_version: str | None


class Router:
    """Per-model traffic splitter for serving processes.

    The running experiment's state is read from the store at most every ``cache_seconds``, so a ramp step or a
    rollback reaches running services within that delay, without a restart. If the store cannot be read the
    last known state is kept (or, before any successful read, everyone gets the champion).

    Args:
        settings: Active settings (``rollout_db_uri`` locates the store).
        model: Model family name, e.g. ``"churn"``.
        cache_seconds: Maximum age of the cached experiment state.
    """

    def __init__(self, settings, model: str, cache_seconds: float = 2.0):
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        self.settings = settings
        self.model = model
        self.cache_seconds = float(cache_seconds)
        self._store = get_store(settings)
        self._state: dict | None = None
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def _current(self) -> dict | None:
        now = time.monotonic()
        if now - self._loaded_at < self.cache_seconds:
            return self._state
        with self._lock:
            if now - self._loaded_at >= self.cache_seconds:
                try:
                    running = self._store.running(self.model)
                    self._state = running[0] if running else None
                except Exception as exc:  # noqa: BLE001 - serving must go on with the last known split
                    log.warning("rollout store unreadable, keeping the last known split for %s: %s", self.model, exc)
                self._loaded_at = now
        return self._state

    def assign(self, unit_id: str) -> Assignment:
        """The unit's arm: sticky per experiment, challenger share = the current ramp weight."""
        if not isinstance(unit_id, str) or not unit_id:
            raise ValueError(f"unit_id must be a non-empty string, got {unit_id!r}")
        state = self._current()
        if state is None:
            return Assignment(CHAMPION_ARM, None, 0.0, None, None)
        weight = float(state["weight"])
        return Assignment(arm_for(state["experiment_id"], unit_id, weight), state["experiment_id"], weight,
                          state["champion_version"], state["challenger_version"])

    def log_request(self, unit_id: str, assignment: Assignment, model_version: str, latency_ms: float,
                    error: str | None = None) -> None:
        """Durably record one served request (committed before returning); a no-op outside an experiment.

        Raises:
            ValueError: naming the field, for a bad unit id, arm or latency.
            sqlalchemy.exc.SQLAlchemyError: if the store cannot be written (the caller decides whether a lost
                log line fails the request).
        """
        if assignment.experiment_id is None:
            return
        self._store.log_request(assignment.experiment_id, self.model, unit_id, assignment.arm,
                                assignment.challenger_weight, model_version, latency_ms, error)


def record_outcome(settings, model: str, unit_id: str, kind: str, value: float = 1.0,
                   experiment_id: str | None = None) -> None:
    """Durably record a business outcome of a unit (committed before returning).

    Args:
        settings: Active settings.
        model: Model family whose experiment the outcome belongs to.
        unit_id: The unit (customer) that clicked / purchased.
        kind: ``click``, ``purchase`` or ``revenue``.
        value: 1 for click/purchase events; the amount for ``revenue``.
        experiment_id: Defaults to the model's running experiment; without one the outcome is not recorded.

    Raises:
        ValueError: naming the field (``kind``, ``value``, ``unit_id``, ``model``, ``experiment_id``) on bad input,
            e.g. an ``experiment_id`` of another model.
    """
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OUTCOME_KINDS)}, got {kind!r}")
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"unit_id must be a non-empty string, got {unit_id!r}")
    value = _require_number("value", value)
    store = get_store(settings)
    if experiment_id is None:
        running = store.running(model)
        if not running:
            log.debug("no running experiment for %s: outcome of %s not recorded", model, unit_id)
            return
        experiment_id = running[0]["experiment_id"]
    elif experiment_id not in {e["experiment_id"] for e in store.experiments(model)}:
        raise ValueError(f"experiment_id {str(experiment_id)[:200]!r} is not an experiment of model {model!r}")
    store.log_outcome(experiment_id, model, unit_id, kind, value)


def current_weights(settings) -> dict[str, float]:
    """Challenger traffic share of every model with a running experiment, e.g. ``{"churn": 0.25}``."""
    return {row["model"]: float(row["weight"]) for row in get_store(settings).running()}
