"""One Bento service pattern for every registered model family.

``make_service(spec)`` builds a BentoML service class from the family's :class:`~pipelines.spec.ServingSpec`:
a typed ``POST`` endpoint (pydantic request/response), ``POST /feedback`` for A/B outcomes, Bearer-key auth on
both, the champion (and during a rollout the challenger) from the MLflow registry with its native flavor, adaptive
batching of the numeric model call where the family exposes one, and Prometheus metrics. BentoML's built-in
``/healthz``, ``/livez``, ``/readyz`` (ready once the model is loaded) and ``/metrics`` stay open.

The classes are generated at import from the registry, one per family: ``bentoml serve
model_serving.service:ChurnService``. Nothing connects at import; models load in the service's ``__init__``.
"""

from __future__ import annotations

import base64
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, Field

from model_serving.auth import check_bearer, resolve_api_key
from pipelines.registry import load_registry
from pipelines.serving import RequestError
from pipelines.spec import ApiModel, ModelSpec

log = logging.getLogger(__name__)

_METRICS: dict[str, Any] = {}
SERVICE_THREADS = 16
"""Request handler threads per worker (BentoML's default is 1)."""


def _metrics() -> dict[str, Any]:
    """Prometheus metrics, created on first use inside the worker (after BentoML set up multiprocess mode)."""
    if not _METRICS:
        from prometheus_client import Counter, Gauge, Histogram

        _METRICS.update(
            requests=Counter("shopflow_requests", "Answered requests", ["model", "arm", "model_version", "status"]),
            latency=Histogram("shopflow_request_latency_seconds", "Request latency inside the service",
                              ["model", "arm"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)),
            errors=Counter("shopflow_request_errors", "Requests answered with an error", ["model", "status"]),
            version=Gauge("shopflow_model_version_info", "Loaded model version per arm (value 1)",
                          ["model", "arm", "model_version"], multiprocess_mode="liveall"),
            batch=Histogram("shopflow_batch_size", "Rows per model call after adaptive batching", ["model"],
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)),
        )
    return _METRICS


class HTTPError(BentoMLException):
    """A 4xx whose status comes from the :class:`RequestError` it wraps."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, error_code=HTTPStatus(status))


class Feedback(ApiModel):
    """An outcome of a served request, for the A/B analysis."""

    unit_id: str = Field(min_length=1, max_length=64, description="Customer (or product) the outcome belongs to.")
    kind: Literal["click", "purchase", "revenue"]
    value: float = Field(1.0, ge=0, le=1e7, description="1 for click/purchase, the amount for revenue.")
    experiment_id: str | None = Field(None, max_length=200)


class FeedbackAck(ApiModel):
    recorded: bool
    model: str
    experiment_id: str | None


class UploadForm(ApiModel):
    """Multipart upload of an image file (any size, greyscale or RGB)."""

    image: Path = Field(description="PNG or JPEG file.")
    k: int = Field(10, ge=1, le=100)


def _fix_bentoml_task_schema() -> None:
    """BentoML 1.4 publishes its built-in ``TaskStatusResponse`` component with a ``{"type": "null"}`` (OpenAPI 3.1
    syntax) inside a 3.0.2 document, which makes every service's spec invalid; republish it as 3.0 ``nullable``."""
    from _bentoml_sdk.service import openapi as bentoml_openapi
    from bentoml._internal.service.openapi.specification import Schema

    from pipelines.spec import openapi30

    schema = openapi30(bentoml_openapi.TaskStatusResponse.model_json_schema())
    bentoml_openapi.task_status_schema = Schema(**schema)


_fix_bentoml_task_schema()


def class_name(model: str) -> str:
    """``churn`` -> ``ChurnService``."""
    return "".join(part.capitalize() for part in model.split("_")) + "Service"


def make_service(spec: ModelSpec):
    """A BentoML service class serving ``spec``'s family."""
    serving = spec.serving
    assert serving is not None, spec.name
    model_name = spec.name

    class Service:
        def __init__(self) -> None:
            from pipelines.serving import ServingRuntime
            from pipelines.settings import get_settings

            self.settings = get_settings()
            self.api_key = resolve_api_key(self.settings)
            infer = None
            if serving.batch_infer is not None and self.settings.serving.batching:
                infer = self._make_batcher()
            self.runtime = ServingRuntime(self.settings, spec, infer=infer)
            for version in self.runtime.loaded_versions():
                _metrics()["version"].labels(model_name, self.runtime.fixed_arm or "champion", version).set(1)
            log.info("serving %s (arm=%s, batching=%s)", model_name, self.settings.serving.arm, infer is not None)

        def __is_ready__(self) -> bool:
            return getattr(getattr(self, "runtime", None), "ready", False)

        def _make_batcher(self):
            """BentoML's adaptive batcher (``CorkDispatcher``) around the family's numeric model call.

            Concurrent requests' rows are stacked into one call; the dispatcher learns the call's latency and
            waits at most ``max_latency`` for more work. Request handlers run in worker threads, so they hand their
            rows to the event loop with ``anyio.from_thread``.
            """
            import anyio.from_thread
            import numpy as np
            from bentoml._internal.marshal.dispatcher import CorkDispatcher

            dispatchers: dict[int, Any] = {}
            latency_ms = self.settings.serving.batch_max_latency_ms

            def fallback():
                raise HTTPError("server overloaded, retry", 503)

            def infer(predictor, x):
                key = id(predictor)
                if key not in dispatchers:
                    async def call(batches):
                        sizes = [len(b) for b in batches]
                        stacked = np.concatenate(batches, axis=0)
                        _metrics()["batch"].labels(model_name).observe(len(stacked))
                        out = await anyio.to_thread.run_sync(serving.batch_infer, predictor, stacked)
                        return list(np.split(np.asarray(out), np.cumsum(sizes)[:-1]))

                    dispatchers[key] = CorkDispatcher(max_latency_in_ms=latency_ms, max_batch_size=1024,
                                                      fallback=fallback, get_batch_size=len)(call)
                return anyio.from_thread.run(dispatchers[key], x)

            return infer

        def _answer(self, ctx: bentoml.Context, request: BaseModel) -> dict:
            m = _metrics()
            try:
                check_bearer(ctx.request.headers.get("authorization"), self.api_key)
                served = self.runtime.handle(request)
            except RequestError as exc:
                m["errors"].labels(model_name, str(exc.status)).inc()
                raise HTTPError(str(exc), exc.status) from None
            except BentoMLException as exc:
                m["errors"].labels(model_name, str(exc.error_code.value)).inc()
                raise
            except Exception:
                m["errors"].labels(model_name, "500").inc()
                raise
            for arm, version in served.arms.items():
                m["requests"].labels(model_name, arm, version, "200").inc()
                m["latency"].labels(model_name, arm).observe(served.latency_ms / 1000)
                m["version"].labels(model_name, arm, version).set(1)
            return served.body

        @bentoml.api(route=serving.route, input_spec=serving.request, output_spec=serving.response)
        def predict(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
            return serving.response(**self._answer(ctx, serving.request.model_construct(**fields)))

        @bentoml.api(route="/feedback", input_spec=Feedback, output_spec=FeedbackAck)
        def feedback(self, ctx: bentoml.Context, **fields: Any) -> FeedbackAck:
            """Record an outcome (click, purchase, revenue) of a served customer for the running A/B test."""
            from pipelines.rollout import record_outcome

            check_bearer(ctx.request.headers.get("authorization"), self.api_key)
            fb = Feedback.model_construct(**fields)
            experiment = fb.experiment_id or self.runtime.router.assign(fb.unit_id).experiment_id
            if experiment is not None:
                record_outcome(self.settings, model_name, fb.unit_id, fb.kind, fb.value, experiment_id=experiment)
            return FeedbackAck(recorded=experiment is not None, model=model_name, experiment_id=experiment)

        if getattr(serving, "upload_field", None):
            @bentoml.api(route=f"{serving.route}/upload", input_spec=UploadForm, output_spec=serving.response)
            def upload(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
                """The same answer for an uploaded image file (multipart form field ``image``)."""
                form = UploadForm.model_construct(**fields)
                try:
                    raw = Path(form.image).read_bytes()
                except OSError as exc:
                    raise HTTPError(f"image: could not read the upload ({exc})", 400) from None
                request = serving.request(**{serving.upload_field: base64.b64encode(raw).decode(), "k": form.k})
                return serving.response(**self._answer(ctx, request))

    Service.predict.doc = serving.summary or spec.description
    Service.__name__ = Service.__qualname__ = class_name(model_name)
    Service.__module__ = __name__
    Service.__doc__ = f"{model_name}: {spec.description}"
    # Several request threads: concurrent requests must be in flight together for the adaptive batcher to merge
    # them (one thread would serialise them before they reach it).
    return bentoml.service(name=f"shopflow-{model_name.replace('_', '-')}", traffic={"timeout": 60},
                           threads=SERVICE_THREADS)(Service)


for _name, _spec in load_registry().items():
    if _spec.serving is not None:
        globals()[class_name(_name)] = make_service(_spec)
del _name, _spec
