"""Serving runtime shared by every family's Bento: model arms, A/B routing, request errors.

The Bento layer (``model_serving/service.py``) stays thin: it authenticates, hands the validated request to
:meth:`ServingRuntime.handle` and maps :class:`RequestError` to a 4xx. Everything here is plain Python so it is
unit-testable without a server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

from pydantic import Field

from pipelines.settings import Settings
from pipelines.spec import ModelSpec

log = logging.getLogger(__name__)

ARMS = ("champion", "challenger")
ALIAS_CACHE_SECONDS = 10.0
"""How long a running service trusts its last read of an MLflow alias."""


class RequestError(Exception):
    """A client mistake, answered with ``status`` and a message naming the offending field."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(RequestError):
    """Unknown ids (customer, product): 404."""

    status = 404


class TooLarge(RequestError):
    """A batch or payload over the configured limit: 413."""

    status = 413


MAX_LIST = 10_000
"""Hard cap of a list request in the schema; the configured ``settings.serving.max_batch`` (413 above it) is lower."""

CustomerIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(min_length=1, max_length=MAX_LIST, description="Customer ids to score (one A/B unit each)."),
]


@dataclass
class FeastPredictor:
    """A model that scores customers on their online features (churn, LTV).

    Attributes:
        model: The native model (e.g. an XGBoost estimator).
        features: Feature names in the model's input order.
        feature_service: Feast FeatureService to read them from.
        extra: Per-customer columns not in the online store (e.g. purchase summaries), indexed by customer id.
    """

    settings: Settings
    model: Any
    features: list[str]
    feature_service: str
    store: Any = None
    extra: Any = None

    def rows(self, customer_ids) -> tuple[Any, Any]:
        """``(X, known)``: the ``(n, features)`` float matrix of the customers in order, and which have online
        features (rows of unknown customers are zeros)."""
        import numpy as np

        from pipelines.features.store import online_features

        ids = [str(c) for c in customer_ids]
        unique = list(dict.fromkeys(ids))
        frame = online_features(self.settings, unique, self.feature_service, store=self.store)
        frame = frame.set_index("customer_id")
        online = [c for c in self.features if c in frame.columns]
        known = ~frame[online].isna().all(axis=1)
        if self.extra is not None:
            frame = frame.join(self.extra, how="left")
        x = frame.loc[ids, self.features].astype("float64").fillna(0.0).to_numpy(np.float64)
        return x, known.loc[ids].to_numpy(bool)

    def infer_ids(self, customer_ids, score: Callable[[Any], Any]):
        """The batchable core of customer scoring: one feature-store read and one model call for all ids.

        Unknown customers get NaN, so one bad id in a batch shared by concurrent requests only fails its own
        request (see :meth:`answer`).
        """
        import numpy as np

        x, known = self.rows(customer_ids)
        out = np.full(len(x), np.nan)
        if known.any():
            out[known] = score(x[known])
        return out

    @staticmethod
    def check_known(customer_ids: list[str], values) -> None:
        """Raise :class:`NotFound` naming the customers whose value is NaN (no online features)."""
        import numpy as np

        unknown = [c for c, v in zip(customer_ids, values, strict=True) if np.isnan(v)]
        if unknown:
            unknown = list(dict.fromkeys(unknown))
            raise NotFound("customer_ids", f"{len(unknown)} unknown customer(s) with no online features: "
                                           f"{short_list(unknown)}")


def feast_predictor(settings: Settings, model: Any, features: list[str], feature_service: str,
                    extra: Any = None) -> FeastPredictor:
    """A :class:`FeastPredictor` with its own feature-store handle (built once per loaded model)."""
    from pipelines.features.store import get_store

    return FeastPredictor(settings, model, list(features), feature_service, get_store(settings), extra)


def batch_values(settings: Settings, table: str, column: str, n: int = 3) -> list[str]:
    """The first ``n`` distinct values of a column of the served batch (for request examples)."""
    from pipelines.data.io import read_table

    batch = settings.current_batch_dir()
    if batch is None:
        raise RuntimeError("no validated batch: run `shopflow run` first")
    values = read_table(batch, table)[column].astype(str)
    return list(dict.fromkeys(values))[:n]


def short_list(items: list[str], n: int = 10) -> str:
    """``a, b, c …`` for error messages."""
    return ", ".join(map(str, items[:n])) + (" …" if len(items) > n else "")


def _with_arm(assignment: Any, arm: str) -> Any:
    """The assignment as actually served (a single-arm Deployment serves its own arm whatever the hash said)."""
    import dataclasses

    if dataclasses.is_dataclass(assignment) and getattr(assignment, "arm", arm) != arm:
        return dataclasses.replace(assignment, arm=arm)
    return assignment


@dataclass
class Served:
    """One answered request, for metrics and the A/B log."""

    body: dict[str, Any]
    arms: dict[str, str] = field(default_factory=dict)
    """``{arm: model_version}`` of the arms that answered."""
    latency_ms: float = 0.0


class ServingRuntime:
    """Holds the champion (and, during an A/B rollout, the challenger) of one family and answers requests.

    Args:
        settings: ShopFlow settings; ``settings.serving.arm`` picks ``both`` (route in-process, local) or a single
            arm (one Kubernetes Deployment per arm, weights at the gateway).
        spec: The family's model spec; must have ``serving``.
        infer: Optional replacement of ``spec.serving.batch_infer`` (the Bento passes its adaptive batcher).
    """

    def __init__(self, settings: Settings, spec: ModelSpec, infer: Callable[[Any, Any], Any] | None = None) -> None:
        from pipelines import tracking
        from pipelines.rollout import Router

        if spec.serving is None:
            raise ValueError(f"model {spec.name!r} has no serving spec")
        self.settings, self.spec, self.serving = settings, spec, spec.serving
        self.client = tracking.configure(settings)
        self.router = Router(settings, spec.name)
        self._infer = infer
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] = {}  # version -> predictor
        self._alias_cache: dict[str, tuple[str, float]] = {}
        self.fixed_arm = None if settings.serving.arm == "both" else settings.serving.arm
        # Load what this process must answer with now: a missing champion is a deployment error, not a 500 later.
        first = self.fixed_arm or tracking.CHAMPION
        mv = tracking.version_by_alias(self.client, spec.name, first)
        if mv is None:
            raise RuntimeError(f"no '{first}' version of model '{spec.name}' in the registry; run `shopflow run`")
        self.predictor(str(mv.version))
        self.ready = True

    # ------------------------------------------------------------------ models
    def predictor(self, version: str) -> Any:
        """The loaded model of ``version`` (loaded once; a challenger is loaded when its rollout starts)."""
        with self._lock:
            if version not in self._loaded:
                t0 = time.perf_counter()
                self._loaded[version] = self.serving.load(self.settings, f"models:/{self.spec.name}/{version}")
                log.info("loaded %s v%s in %.1fs", self.spec.name, version, time.perf_counter() - t0)
            return self._loaded[version]

    def _version_of(self, arm: str, assignment) -> str:
        """Version serving ``arm``: the experiment's pinned version, else the alias (cached for a few seconds, so
        an alias move, e.g. a promotion, reaches running services without a registry query per request)."""
        from pipelines import tracking

        version = assignment.champion_version if arm == "champion" else assignment.challenger_version
        if version is not None:
            return str(version)
        now = time.monotonic()
        cached = self._alias_cache.get(arm)
        if cached is None or now - cached[1] > ALIAS_CACHE_SECONDS:
            mv = tracking.version_by_alias(self.client, self.spec.name, arm)
            if mv is None:
                raise RuntimeError(f"no '{arm}' version of {self.spec.name}")
            cached = self._alias_cache[arm] = (str(mv.version), now)
        return cached[0]

    def loaded_versions(self) -> list[str]:
        return sorted(self._loaded)

    # ------------------------------------------------------------------ requests
    def _assign(self, unit: str):
        assignment = self.router.assign(unit)
        arm = self.fixed_arm or assignment.arm
        return arm, assignment

    def _call(self, version: str, request: Any) -> dict[str, Any]:
        predictor = self.predictor(version)
        if self.serving.batch_infer is not None:
            infer = self._infer or self.serving.batch_infer
            return self.serving.predict(predictor, request, lambda x: infer(predictor, x))
        return self.serving.predict(predictor, request)

    def handle(self, request: Any) -> Served:
        """Answer one validated request: route to arm(s), predict, log the A/B assignment durably.

        Raises:
            RequestError: a client mistake (bad value, unknown id, too large).
        """
        t0 = time.perf_counter()
        field_name = self.serving.items_field
        if field_name is None:
            unit = self.serving.unit_id(request)
            arm, assignment = self._assign(unit)
            version = self._version_of(arm, assignment)
            error = None
            try:
                payload = self._call(version, request)
            except RequestError as exc:
                error = type(exc).__name__
                raise
            finally:
                latency = (time.perf_counter() - t0) * 1000
                if assignment.experiment_id is not None:
                    self.router.log_request(unit, _with_arm(assignment, arm),
                                            version, latency, error)
            body = {"model": self.spec.name, "model_version": version, "arm": arm,
                    "experiment_id": assignment.experiment_id, **payload}
            return Served(body, {arm: version}, latency)

        # List request: every id is its own A/B unit, so split the list by arm and merge in request order.
        ids = list(getattr(request, field_name))
        if len(ids) > self.settings.serving.max_batch:
            raise TooLarge(field_name, f"{len(ids)} items; at most {self.settings.serving.max_batch} per request")
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        assignments = {}
        for i, unit in enumerate(ids):
            arm, assignment = self._assign(unit)
            assignments[unit] = (arm, assignment)
            groups[(arm, self._version_of(arm, assignment))].append(i)
        items: list[Any] = [None] * len(ids)
        payload: dict[str, Any] = {}
        for (arm, version), idx in groups.items():
            sub = request.model_copy(update={field_name: [ids[i] for i in idx]})
            part = self._call(version, sub)
            for i, item in zip(idx, part.pop("predictions"), strict=True):
                items[i] = {**(item if isinstance(item, dict) else item.model_dump()), "arm": arm,
                            "model_version": version}
            payload.update(part)
        latency = (time.perf_counter() - t0) * 1000
        arms = {arm: version for arm, version in groups}
        experiment_id = None
        for unit, (arm, assignment) in assignments.items():
            if assignment.experiment_id is not None:
                experiment_id = assignment.experiment_id
                self.router.log_request(unit, _with_arm(assignment, arm),
                                        arms[arm], latency, None)
        arm = next(iter(arms)) if len(arms) == 1 else "mixed"
        version = arms[arm] if len(arms) == 1 else ",".join(arms[a] for a in ARMS if a in arms)
        body = {"model": self.spec.name, "model_version": version, "arm": arm, "experiment_id": experiment_id,
                **payload, "predictions": items}
        return Served(body, arms, latency)
