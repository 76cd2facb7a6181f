"""Durable A/B store: request and outcome events, rollout state and alias history (SQLAlchemy Core).

One code path for both profiles: a SQLite file under the home (WAL journal, ``synchronous=FULL``, ``BEGIN
IMMEDIATE`` so concurrent writers queue on the busy timeout instead of failing) or PostgreSQL in production.
Every write is its own committed transaction before the call returns. Event tables (requests, outcomes, rollout
events, alias history) are append-only; only the one-row-per-experiment state table is updated, and only through
conditional transitions (``WHERE status = 'running'``) so two concurrent deciders cannot both act.

Tables are created on first use; importing this module opens no connection.
"""

from __future__ import annotations

import json
import math
import os
import threading
from datetime import UTC, datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy import event

ARMS = ("champion", "challenger")
OUTCOME_KINDS = ("click", "purchase", "revenue")
RUNNING, PROMOTED, ROLLED_BACK = "running", "promoted", "rolled_back"
PREFIX = "shopflow_ab_"
"""Table prefix: in production the store shares the PostgreSQL database with MLflow."""

metadata = sa.MetaData()

requests_t = sa.Table(
    f"{PREFIX}requests", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("experiment_id", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("unit_id", sa.String(256), nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index(f"ix_{PREFIX}requests_exp_ts", "experiment_id", "ts"),
)

outcomes_t = sa.Table(
    f"{PREFIX}outcomes", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("experiment_id", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("unit_id", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index(f"ix_{PREFIX}outcomes_exp_kind_ts", "experiment_id", "kind", "ts"),
)

rollouts_t = sa.Table(
    f"{PREFIX}rollouts", metadata,
    sa.Column("experiment_id", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("champion_version", sa.String(64), nullable=False),
    sa.Column("challenger_version", sa.String(64), nullable=False),
    sa.Column("metric", sa.String(16), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("stage_started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("analysis", sa.Text),
    # At most one running experiment per model, enforced by the database itself.
    sa.Index(f"ux_{PREFIX}rollouts_running", "model", unique=True,
             sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'")),
)

rollout_events_t = sa.Table(
    f"{PREFIX}rollout_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("experiment_id", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("analysis", sa.Text),
    sa.Index(f"ix_{PREFIX}rollout_events_exp", "experiment_id", "id"),
)

alias_history_t = sa.Table(
    f"{PREFIX}alias_history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64)),
    sa.Column("previous_version", sa.String(64)),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Index(f"ix_{PREFIX}alias_history_model", "model", "id"),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def _require_text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def _require_number(field: str, value: Any, minimum: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{field} must be a finite number{bound}, got {value!r}")
    return number


def _engine_for(uri: str) -> sa.Engine:
    if uri.startswith("sqlite"):
        engine = sa.create_engine(uri, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DB-API hook
            # Let SQLAlchemy's "begin" hook below issue the BEGIN (pysqlite's implicit BEGIN is DEFERRED).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: a commit survives power loss
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            # IMMEDIATE takes the write lock up front: read-then-write transactions wait on the busy timeout
            # instead of failing with SQLITE_BUSY when another writer got there first.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(uri, pool_pre_ping=True)


class RolloutStore:
    """All reads and writes of the A/B store. Get one with :func:`get_store` (engines are shared per process)."""

    def __init__(self, uri: str, engine: sa.Engine | None = None):
        self.uri = uri
        self.engine = engine or _engine_for(uri)
        self._ready = False
        self._ready_lock = threading.Lock()

    # ---------------------------------------------------------------- plumbing
    def _ensure(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                if self.uri.startswith("sqlite:///"):
                    path = self.uri.removeprefix("sqlite:///")
                    if path and path != ":memory:":
                        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                metadata.create_all(self.engine, checkfirst=True)
                self._ready = True

    def _write(self, table: sa.Table, rows: dict | list[dict]) -> None:
        self._ensure()
        with self.engine.begin() as conn:  # committed (and fsynced locally) when the block exits
            conn.execute(table.insert(), rows)

    def _read(self, stmt) -> list[dict]:
        self._ensure()
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def dispose(self) -> None:
        """Close pooled connections (a new store on the same URI reopens them)."""
        self.engine.dispose()

    # ---------------------------------------------------------------- events (append-only)
    def log_request(self, experiment_id: str, model: str, unit_id: str, arm: str, weight: float,
                    model_version: str | None, latency_ms: float, error: str | None = None,
                    ts: datetime | None = None) -> None:
        """Append one served request of an experiment."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}, got {arm!r}")
        self._write(requests_t, {
            "ts": ts or utcnow(), "experiment_id": _require_text("experiment_id", experiment_id),
            "model": _require_text("model", model), "unit_id": _require_text("unit_id", unit_id), "arm": arm,
            "weight": _require_number("weight", weight, 0.0),
            "model_version": None if model_version is None else str(model_version),
            "latency_ms": _require_number("latency_ms", latency_ms, 0.0),
            "error": None if error is None else str(error)[:2000],
        })

    def log_outcome(self, experiment_id: str, model: str, unit_id: str, kind: str, value: float = 1.0,
                    ts: datetime | None = None) -> None:
        """Append one business outcome (click, purchase, revenue) of a unit in an experiment."""
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"kind must be one of {', '.join(OUTCOME_KINDS)}, got {kind!r}")
        self._write(outcomes_t, {
            "ts": ts or utcnow(), "experiment_id": _require_text("experiment_id", experiment_id),
            "model": _require_text("model", model), "unit_id": _require_text("unit_id", unit_id), "kind": kind,
            "value": _require_number("value", value),
        })

    def log_alias_change(self, model: str, alias: str, version: str | None, previous_version: str | None,
                         actor: str, reason: str | None) -> dict:
        """Append one alias move (who moved which alias from what to what, and why)."""
        row = {"ts": utcnow(), "model": _require_text("model", model), "alias": _require_text("alias", alias),
               "version": None if version is None else str(version),
               "previous_version": None if previous_version is None else str(previous_version),
               "actor": _require_text("actor", actor), "reason": reason}
        self._write(alias_history_t, row)
        return row

    def alias_history(self, model: str) -> list[dict]:
        rows = self._read(sa.select(alias_history_t).where(alias_history_t.c.model == model)
                          .order_by(alias_history_t.c.id))
        for r in rows:
            r["ts"] = _aware(r["ts"])
        return rows

    def count(self, table_name: str, experiment_id: str | None = None) -> int:
        """Row count of one table (optionally of one experiment); for tests and health checks."""
        table = metadata.tables[f"{PREFIX}{table_name}"]
        stmt = sa.select(sa.func.count()).select_from(table)
        if experiment_id is not None:
            stmt = stmt.where(table.c.experiment_id == experiment_id)
        self._ensure()
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def requests(self, experiment_id: str) -> list[dict]:
        return self._read(sa.select(requests_t).where(requests_t.c.experiment_id == experiment_id)
                          .order_by(requests_t.c.id))

    # ---------------------------------------------------------------- rollout state
    def running(self, model: str | None = None) -> list[dict]:
        """State rows of running experiments (of one model, or all)."""
        stmt = sa.select(rollouts_t).where(rollouts_t.c.status == RUNNING)
        if model is not None:
            stmt = stmt.where(rollouts_t.c.model == model)
        return [self._state(r) for r in self._read(stmt.order_by(rollouts_t.c.model))]

    def latest(self, model: str) -> dict | None:
        """The running experiment of ``model``, else its most recently started one, else ``None``."""
        rows = self._read(sa.select(rollouts_t).where(rollouts_t.c.model == model)
                          .order_by((rollouts_t.c.status == RUNNING).desc(), rollouts_t.c.started_at.desc())
                          .limit(1))
        return self._state(rows[0]) if rows else None

    def experiments(self, model: str) -> list[dict]:
        rows = self._read(sa.select(rollouts_t).where(rollouts_t.c.model == model)
                          .order_by(rollouts_t.c.started_at))
        return [self._state(r) for r in rows]

    @staticmethod
    def _state(row: dict) -> dict:
        for key in ("stage_started_at", "started_at", "ended_at"):
            row[key] = _aware(row[key])
        row["analysis"] = json.loads(row["analysis"]) if row.get("analysis") else None
        return row

    def create_experiment(self, model: str, champion_version: str, challenger_version: str, metric: str,
                          weight: float, actor: str, reason: str | None) -> dict:
        """Insert the state row of a new running experiment (id ``<model>-<n>``) and its ``start`` event.

        Raises:
            ExperimentExists: if ``model`` already has a running experiment.
        """
        self._ensure()
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                running = conn.execute(sa.select(rollouts_t.c.experiment_id).where(
                    rollouts_t.c.model == model, rollouts_t.c.status == RUNNING)).first()
                if running is not None:
                    raise ExperimentExists(running.experiment_id)
                n = conn.execute(sa.select(sa.func.count()).select_from(rollouts_t)
                                 .where(rollouts_t.c.model == model)).scalar_one()
                # Deterministic, per-experiment salt for the assignment hash: a new experiment reshuffles units.
                experiment_id = f"{model}-{n + 1}"
                row = {"experiment_id": experiment_id, "model": model, "champion_version": str(champion_version),
                       "challenger_version": str(challenger_version), "metric": metric, "weight": float(weight),
                       "stage": 0, "stage_started_at": now, "status": RUNNING, "started_at": now,
                       "ended_at": None, "actor": actor, "reason": reason, "analysis": None}
                conn.execute(rollouts_t.insert(), row)
                conn.execute(rollout_events_t.insert(), {
                    "ts": now, "experiment_id": experiment_id, "model": model, "action": "start",
                    "weight": float(weight), "actor": actor, "reason": reason, "analysis": None})
        except sa.exc.IntegrityError as exc:  # lost a race against another start: the unique index said no
            raise ExperimentExists(model) from exc
        return self._state(dict(row))

    def transition(self, experiment_id: str, action: str, actor: str, reason: str | None,
                   analysis: dict | None = None, expect_weight: float | None = None, **changes: Any) -> bool:
        """Apply ``changes`` to a running experiment and append the ``action`` event, atomically.

        Only succeeds while the experiment is running (and at ``expect_weight`` if given), so two schedulers
        stepping the same experiment cannot both ramp or both end it.

        Returns:
            Whether the transition happened.
        """
        self._ensure()
        now = utcnow()
        blob = None if analysis is None else json.dumps(analysis, default=str)
        cond = [rollouts_t.c.experiment_id == experiment_id, rollouts_t.c.status == RUNNING]
        if expect_weight is not None:
            cond.append(sa.func.abs(rollouts_t.c.weight - float(expect_weight)) < 1e-9)
        values = dict(changes)
        if values.get("status") in (PROMOTED, ROLLED_BACK):
            values.update(ended_at=now, reason=reason, analysis=blob)
        if "weight" in values:
            values["stage_started_at"] = now
        with self.engine.begin() as conn:
            if values:
                res = conn.execute(rollouts_t.update().where(*cond).values(**values))
                if res.rowcount != 1:
                    return False
            else:
                state = conn.execute(sa.select(rollouts_t.c.model).where(*cond)).first()
                if state is None:
                    return False
            model = conn.execute(sa.select(rollouts_t.c.model, rollouts_t.c.weight)
                                 .where(rollouts_t.c.experiment_id == experiment_id)).one()
            conn.execute(rollout_events_t.insert(), {
                "ts": now, "experiment_id": experiment_id, "model": model.model, "action": action,
                "weight": model.weight, "actor": actor, "reason": reason, "analysis": blob})
        return True

    def reopen(self, experiment_id: str, reason: str) -> None:
        """Undo an end transition whose side effect (moving the MLflow alias) failed."""
        self._ensure()
        with self.engine.begin() as conn:
            conn.execute(rollouts_t.update().where(rollouts_t.c.experiment_id == experiment_id)
                         .values(status=RUNNING, ended_at=None, reason=reason))

    def events(self, experiment_id: str) -> list[dict]:
        rows = self._read(sa.select(rollout_events_t).where(rollout_events_t.c.experiment_id == experiment_id)
                          .order_by(rollout_events_t.c.id))
        for r in rows:
            r["ts"] = _aware(r["ts"])
            r["analysis"] = json.loads(r["analysis"]) if r["analysis"] else None
        return rows

    # ---------------------------------------------------------------- analysis queries
    def stage_requests(self, experiment_id: str, weight: float, since: datetime,
                       slow_ms: float) -> dict[str, dict]:
        """Per arm: units, requests, errors, requests slower than ``slow_ms`` and the p99 latency of one stage."""
        self._ensure()
        cond = [requests_t.c.experiment_id == experiment_id, requests_t.c.ts >= since,
                sa.func.abs(requests_t.c.weight - float(weight)) < 1e-9]
        stmt = (sa.select(requests_t.c.arm,
                          sa.func.count(sa.distinct(requests_t.c.unit_id)).label("units"),
                          sa.func.count().label("requests"),
                          sa.func.count(requests_t.c.error).label("errors"),
                          sa.func.sum(sa.case((requests_t.c.latency_ms > slow_ms, 1), else_=0)).label("slow"),
                          sa.func.max(requests_t.c.latency_ms).label("max_latency_ms"))
                .where(*cond).group_by(requests_t.c.arm))
        out = {arm: {"units": 0, "requests": 0, "errors": 0, "slow": 0, "p99_latency_ms": None} for arm in ARMS}
        with self.engine.connect() as conn:
            for r in conn.execute(stmt):
                out[r.arm] = {"units": int(r.units), "requests": int(r.requests), "errors": int(r.errors),
                              "slow": int(r.slow or 0), "p99_latency_ms": None}
            for arm, agg in out.items():
                if agg["requests"]:
                    # Nearest-rank p99 without pulling every latency: the k-th largest, k = ceil(1% of n).
                    k = max(1, math.ceil(0.01 * agg["requests"]))
                    agg["p99_latency_ms"] = float(conn.execute(
                        sa.select(requests_t.c.latency_ms).where(*cond, requests_t.c.arm == arm)
                        .order_by(requests_t.c.latency_ms.desc()).limit(1).offset(k - 1)).scalar_one())
        return out

    def stage_metric(self, experiment_id: str, weight: float, since: datetime, kind: str) -> dict[str, tuple]:
        """Per arm ``(n_units, sum, sum_of_squares)`` of the per-unit metric over one stage.

        The unit is the analysis unit: every unit that was served in the stage counts once, with 0 when it has
        no outcome. ``revenue`` sums values; ``click``/``purchase`` are conversions (1 if any event).
        """
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"metric must be one of {', '.join(OUTCOME_KINDS)}, got {kind!r}")
        self._ensure()
        units = (sa.select(requests_t.c.unit_id, requests_t.c.arm).distinct()
                 .where(requests_t.c.experiment_id == experiment_id, requests_t.c.ts >= since,
                        sa.func.abs(requests_t.c.weight - float(weight)) < 1e-9)
                 .subquery("units"))
        outcomes = (sa.select(outcomes_t.c.unit_id, sa.func.sum(outcomes_t.c.value).label("total"))
                    .where(outcomes_t.c.experiment_id == experiment_id, outcomes_t.c.kind == kind,
                           outcomes_t.c.ts >= since)
                    .group_by(outcomes_t.c.unit_id).subquery("outcomes"))
        if kind == "revenue":
            y = sa.func.coalesce(outcomes.c.total, 0.0)
        else:
            y = sa.case((outcomes.c.total.is_not(None), 1.0), else_=0.0)
        per_unit = (sa.select(units.c.arm, y.label("y"))
                    .select_from(units.outerjoin(outcomes, outcomes.c.unit_id == units.c.unit_id))
                    .subquery("per_unit"))
        stmt = (sa.select(per_unit.c.arm, sa.func.count(), sa.func.sum(per_unit.c.y),
                          sa.func.sum(per_unit.c.y * per_unit.c.y))
                .group_by(per_unit.c.arm))
        out = {arm: (0, 0.0, 0.0) for arm in ARMS}
        with self.engine.connect() as conn:
            for arm, n, total, total_sq in conn.execute(stmt):
                out[arm] = (int(n), float(total or 0.0), float(total_sq or 0.0))
        return out


class ExperimentExists(RuntimeError):
    """A model already has a running experiment."""


_stores: dict[tuple[str, int], RolloutStore] = {}
_stores_lock = threading.Lock()


def get_store(uri_or_settings: Any) -> RolloutStore:
    """The process-wide store for a URI (or a ``Settings``' ``rollout_db_uri``).

    Keyed by process id too: a pooled connection must never cross a ``fork`` (serving workers fork).
    """
    uri = uri_or_settings if isinstance(uri_or_settings, str) else uri_or_settings.rollout_db_uri
    key = (uri, os.getpid())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = RolloutStore(uri)
        return store


def reset_stores(uris: Iterable[str] | None = None) -> None:
    """Dispose cached engines (all, or of ``uris``); the next :func:`get_store` reconnects."""
    with _stores_lock:
        for key in list(_stores):
            if uris is None or key[0] in set(uris):
                _stores.pop(key).dispose()
