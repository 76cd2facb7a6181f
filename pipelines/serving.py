"""Serving runtime shared by every family's Bento: model arms, A/B routing, request errors.

The Bento layer (``model_serving/service.py``) stays thin: it authenticates, hands the validated request to
:meth:`ServingRuntime.handle` and maps :class:`RequestError` to a 4xx. Everything here is plain Python so it is
unit-testable without a server.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

from pydantic import Field

from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import Settings
from pipelines.spec import ApiModel, ModelSpec, ServedResponse

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

    Per request this is one Feast read (``get_online_features(...).to_dict()``) and numpy indexing: the feature
    service, its join key and the ``extra`` lookup are resolved once, on the first request (a registry lookup and
    pandas frames per request cost more than the read itself).
    """

    settings: Settings
    model: Any
    features: list[str]
    feature_service: str
    store: Any = None
    extra: Any = None
    tap: Callable[[Any, list[str], Any], None] | None = None
    """Called with ``(unit ids, feature names, rows)`` of what was scored (the served-request log)."""
    _plan: Any = field(default=None, repr=False)

    def _resolve(self):
        """``(feature service, join key, online feature names, extra index, extra matrix, extra columns)``."""
        import numpy as np

        from pipelines.features.store import get_store, service_plan

        if self._plan is None:
            store = self.store = self.store or get_store(self.settings)
            service, key, names = service_plan(store, self.feature_service)
            online = [f for f in self.features if f in set(names)]
            extra_cols = [f for f in self.features if f not in set(online)]
            if self.extra is not None and extra_cols:
                missing = [c for c in extra_cols if c not in self.extra.columns]
                if missing:
                    raise KeyError(f"features {missing} are neither in {self.feature_service} nor in the extra columns")
                index = {str(i): n for n, i in enumerate(self.extra.index)}
                matrix = self.extra[extra_cols].astype("float64").to_numpy(np.float64)
            else:
                if extra_cols:
                    raise KeyError(f"features {extra_cols} are not in feature service {self.feature_service}")
                index, matrix = {}, np.zeros((0, 0))
            self._plan = (service, key, online, index, matrix, extra_cols)
        return self._plan

    def rows(self, customer_ids) -> tuple[Any, Any]:
        """``(X, known)``: the ``(n, features)`` float matrix of the customers in order, and which have online
        features (rows of unknown customers are zeros)."""
        import numpy as np

        service, key, online, index, matrix, extra_cols = self._resolve()
        ids = [str(c) for c in customer_ids]
        unique = list(dict.fromkeys(ids))
        found = self.store.get_online_features(features=service, entity_rows={key: unique},
                                               full_feature_names=False).to_dict()
        n_unique = len(unique)
        x_unique = np.zeros((n_unique, len(self.features)), dtype=np.float64)
        known = np.zeros(n_unique, dtype=bool)
        column = {f: j for j, f in enumerate(self.features)}
        for name in online:
            values = np.array(found[name], dtype=np.float64)  # None -> nan
            present = ~np.isnan(values)
            known |= present
            x_unique[:, column[name]] = np.where(present, values, 0.0)
        if extra_cols:
            rows = np.array([index.get(c, -1) for c in unique])
            has = rows >= 0
            cols = [column[c] for c in extra_cols]
            block = np.zeros((n_unique, len(extra_cols)))
            block[has] = matrix[rows[has]]
            x_unique[:, cols] = np.nan_to_num(block, nan=0.0)
        if self.tap is not None and known.any():
            self.tap([u for u, k in zip(unique, known) if k], self.features, x_unique[known])
        if n_unique == len(ids):
            return x_unique, known
        order = np.array([unique.index(c) for c in ids]) if n_unique < 8 else \
            np.array([pos for pos in map({c: k for k, c in enumerate(unique)}.__getitem__, ids)])
        return x_unique[order], known[order]

    def infer_ids(self, customer_ids, score: Callable[[Any], Any]):
        """The batchable core of customer scoring: one feature-store read and one model call for all ids.

        Unknown customers get NaN, so one bad id in a batch shared by concurrent requests only fails its own
        request (see :meth:`answer`).
        """
        import numpy as np

        x, known = self.rows(customer_ids)
        out = np.full(len(x), np.nan)
        if known.all():
            out[:] = score(x)
        elif known.any():
            out[known] = score(x[known])
        return out

    @staticmethod
    def items(customer_ids: list[str], values, field_name: str) -> list[dict[str, Any]]:
        """One prediction per requested customer, in order: the value, or ``null`` with the reason for a customer
        with no online features (one unknown id does not fail the whole list)."""
        import numpy as np

        return [{"customer_id": c, field_name: float(v), "error": None} if not np.isnan(v) else
                {"customer_id": c, field_name: None, "error": UNKNOWN_CUSTOMER}
                for c, v in zip(customer_ids, values, strict=True)]


UNKNOWN_CUSTOMER = "unknown customer: no online features (not in the served data, or too old)"


# ---------------------------------------------------------------------- explanations (POST /explain)
class ExplainRequest(ApiModel):
    customer_ids: CustomerIds
    top: int = Field(5, ge=1, le=50, description="How many contributions per customer, largest magnitude first.")


class Contribution(ApiModel):
    feature: str
    value: float | str | None = Field(description="The customer's value of the feature (a number, or a category).")
    contribution: float = Field(description="Its additive contribution to the margin.")


class ExplainedItem(ApiModel):
    customer_id: str
    margin: float | None = Field(description="The model's raw output: bias plus every contribution.")
    bias: float | None = Field(description="The margin's constant part (the expected margin).")
    contributions: list[Contribution] = Field(default_factory=list)
    error: str | None = None


class ExplainResponse(ServedResponse):
    margin: str = Field(description="What the margin is: log-odds (classifiers), the prediction (regressors), log "
                                    "expected spend (LTV), or none (the served model has no exact split).")
    predictions: list[ExplainedItem]


def explain_customers(predictor: "FeastPredictor", request: ExplainRequest) -> dict[str, Any]:
    """Each customer's top feature contributions (TreeSHAP or exact linear terms, :mod:`pipelines.explain`) to the
    margin of a :class:`FeastPredictor`'s model; an unknown customer is a null item with its reason.

    A model without an exact additive split answers every item with ``null`` and the reason.
    """
    import pandas as pd

    x, known = predictor.rows(list(request.customer_ids))
    return explain_rows(predictor.model, pd.DataFrame(x, columns=predictor.features), known, request)


def explain_rows(model: Any, frame: Any, known: Any, request: ExplainRequest) -> dict[str, Any]:
    """The ``/explain`` answer for the model's input rows ``frame`` (one per requested id, in order; ``known``
    says which ids exist). A scikit-learn ``Pipeline`` is explained per input column (see
    :func:`pipelines.explain.grouped_contributions`)."""
    from pipelines.explain import NotExplainable, contributions, grouped_contributions

    ids = list(request.customer_ids)
    rows = frame[known]
    try:
        if not known.any():
            c = None
        elif hasattr(model, "steps"):
            c = grouped_contributions(model, rows)
        else:
            c = contributions(model, rows.to_numpy(dtype="float64"), list(frame.columns))
    except NotExplainable as exc:
        return not_explainable(ids, exc)
    kind = "log-odds" if hasattr(model, "predict_proba") else "prediction"
    return explain_items(ids, known, c, rows.to_numpy(dtype=object), request.top, kind)


def not_explainable(ids: list[str], exc: Exception) -> dict[str, Any]:
    """The answer when the served model has no exact additive split: the request was fine, so 200 with every item
    null and the reason (the registered candidate decides, not the client)."""
    return {"margin": "none", "predictions": [{"customer_id": c, "margin": None, "bias": None, "contributions": [],
                                               "error": f"not explainable: {exc}"} for c in ids]}


def explain_items(ids: list[str], known: Any, c: Any, values: Any, top: int, kind: str) -> dict[str, Any]:
    """The ``/explain`` answer from contributions ``c`` of the known ids' rows (``values``: those rows' inputs)."""
    items, k = [], 0
    for cid, ok in zip(ids, known, strict=True):
        if not ok:
            items.append({"customer_id": cid, "margin": None, "bias": None, "contributions": [],
                          "error": UNKNOWN_CUSTOMER})
            continue
        items.append({"customer_id": cid, "margin": float(c.margin[k]), "bias": float(c.bias[k]),
                      "contributions": c.top(k, values[k], top), "error": None})
        k += 1
    return {"margin": kind, "predictions": items}




def serving_context(settings: Settings, model_uri: str):
    """The raw tables a family's server reads beside its model (``ServingSpec.inputs``), as a
    :class:`pipelines.spec.DataContext` over the copies logged with the model version's run: the batch it was
    trained on, from the registry's artifact store, whatever ``SHOPFLOW_HOME`` holds (nothing, in a pod).

    Args:
        settings: ShopFlow settings (the tracking URI).
        model_uri: ``models:/<name>/<version>``, as ``ServingSpec.load`` receives it.

    A version trained before serving inputs were logged gets the batch ``CURRENT`` names instead (what servers
    read before; in production fetched from object storage by id), with a warning to retrain it.
    """
    import contextlib
    import os
    import shutil

    from pipelines import tracking
    from pipelines.spec import DataContext
    from pipelines.training import SERVING_INPUTS

    name, _, version = model_uri.removeprefix("models:/").partition("/")
    client = tracking.configure(settings)
    mv = client.get_model_version(name, version)
    folder = settings.home / "cache" / SERVING_INPUTS / mv.run_id  # a cache: fetched again into an empty home
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{mv.run_id}-{os.getpid()}")
        tmp.mkdir()
        try:
            try:
                local = client.download_artifacts(mv.run_id, SERVING_INPUTS, str(tmp))
            except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact folder
                from pipelines.training import data_context

                log.warning("%s v%s logged no %s/ (trained before servers read them from the registry): serving "
                            "it from the CURRENT batch; retrain it (`shopflow train %s`)", name, version,
                            SERVING_INPUTS, name)
                return data_context(settings)
            with contextlib.suppress(OSError):  # another worker of this pod fetched it meanwhile
                os.rename(local, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    batch_id = mv.tags.get("shopflow.data_snapshot") or mv.run_id
    return DataContext(settings=settings, batch_dir=folder, batch_id=batch_id)


def _feature_sources(predictor: Any) -> list[FeastPredictor]:
    """The :class:`FeastPredictor` a loaded predictor scores through: itself, or one held by a family's wrapper."""
    if isinstance(predictor, FeastPredictor):
        return [predictor]
    return [v for v in getattr(predictor, "__dict__", {}).values() if isinstance(v, FeastPredictor)]


def feast_predictor(settings: Settings, model: Any, features: list[str], feature_service: str,
                    extra: Any = None) -> FeastPredictor:
    """A :class:`FeastPredictor` on the process's shared feature store (see
    :func:`pipelines.features.store.shared_store`)."""
    from pipelines.features.store import shared_store

    if hasattr(model, "get_params") and "n_jobs" in model.get_params():
        # Served batches are small: one thread answers in microseconds, while waking a thread pool for each call
        # costs milliseconds (and the cores are the request threads' already).
        model.set_params(n_jobs=1)
    return FeastPredictor(settings, model, list(features), feature_service, shared_store(settings), extra)


def release_large_allocations(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations of ``threshold`` bytes or more with ``mmap``, so freeing returns them to the OS.

    glibc otherwise raises that threshold after the first large free and keeps freed image buffers in per-thread
    heaps: six request threads that each decoded one large image once hold six bitmaps' worth of memory although
    only ``serving.max_concurrent_decodes`` decode at a time. Returns whether the setting took (glibc only).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD (also disables its dynamic adjustment)
    except (OSError, AttributeError):
        return False


def settle_heap(gen0: int = 20_000) -> None:
    """Call once a server has loaded everything: moves the loaded objects out of the garbage collector's reach and
    makes collections rarer.

    A worker holds over half a million long-lived objects (libraries, model, feature store). CPython's full
    collections scan all of them and, under load, stalled every request in flight for 100-600 ms (the p99 of churn
    ``/predict`` fell from 668 to about 110 ms with this). Frozen objects are never collected; per-request garbage
    still is, by the young generation, every ``gen0`` allocations.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, 20, 50)


_DECODE_LOCK = threading.Lock()
_DECODE_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def _decode_slots(n: int) -> threading.BoundedSemaphore:
    with _DECODE_LOCK:
        return _DECODE_SLOTS.setdefault(n, threading.BoundedSemaphore(n))


def decode_image(raw: bytes, field: str, max_bytes: int | None = None, settings: Settings | None = None):
    """Pixels of an uploaded PNG/JPEG as uint8 ``(H, W)`` (greyscale) or ``(H, W, 3)``, within bounded memory.

    The size in the header is checked before any pixel is decoded (413 above ``serving.max_image_pixels``, so a
    small file that inflates to a huge bitmap is refused cheaply); JPEGs decode at a reduced scale where possible;
    the image is then shrunk to at most ``serving.max_image_side`` per side (no served model looks at more); and at
    most ``serving.max_concurrent_decodes`` images are decoded at once per process.

    Raises:
        TooLarge: naming ``field`` when the file or its pixel count is over the limit.
        RequestError: naming ``field`` when it is not a readable PNG/JPEG.
    """
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from pipelines.settings import get_settings

    limits = (settings or get_settings()).serving
    if max_bytes is not None and len(raw) > max_bytes:
        raise TooLarge(field, f"{len(raw)} bytes; at most {max_bytes}")
    side = limits.max_image_side
    with _decode_slots(limits.max_concurrent_decodes):
        try:
            with Image.open(io.BytesIO(raw), formats=("PNG", "JPEG")) as img:
                width, height = img.size
                if width * height > limits.max_image_pixels:
                    raise TooLarge(field, f"{width}x{height} pixels; at most {limits.max_image_pixels} "
                                          "(width x height)")
                if img.format == "JPEG":
                    img.draft("L" if img.mode == "L" else "RGB", (side, side))  # decode at 1/2, 1/4 or 1/8 scale
                img.load()
                if max(img.size) > side:  # in place: no second full-size bitmap
                    img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
                return np.asarray(img if img.mode in ("L", "RGB") else img.convert("RGB"))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
            raise RequestError(field, f"not a readable PNG/JPEG image ({type(exc).__name__})") from None


def batch_values(settings: Settings, table: str, column: str, n: int = 3) -> list[str]:
    """The first ``n`` distinct values of a column of the served batch (for request examples)."""
    from pipelines.data.io import read_table

    batch = current_batch_dir(settings)
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


class _NoAssignment:
    """No experiment pins a version: the alias decides."""

    champion_version = challenger_version = None


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
        from pipelines.monitoring.served import ServedLog

        self.served = ServedLog(settings, spec.name)  # this process's own bounded sample, for monitoring
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
                for source in _feature_sources(self._loaded[version]):  # report the features it scores
                    source.tap = functools.partial(self.served.features, version)
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

    def explain(self, request: Any) -> Served:
        """Explain with the model serving the champion arm (or this Deployment's fixed arm).

        Raises:
            RequestError: unknown family explanation, too many ids, or a model without an exact explanation.
        """
        t0 = time.perf_counter()
        if self.serving.explain is None:
            raise NotFound("route", f"{self.spec.name} serves no explanations")
        ids = list(request.customer_ids)
        if len(ids) > self.settings.serving.max_batch:
            raise TooLarge("customer_ids", f"{len(ids)} items; at most {self.settings.serving.max_batch} per request")
        arm = self.fixed_arm or "champion"
        version = self._version_of(arm, _NoAssignment)
        payload = self.serving.explain(self.predictor(version), request)
        body = {"model": self.spec.name, "model_version": version, "arm": arm, "experiment_id": None, **payload}
        return Served(body, {arm: version}, (time.perf_counter() - t0) * 1000)

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
            self.served.answer(body, unit)
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
        self.served.answer(body)
        return Served(body, arms, latency)
