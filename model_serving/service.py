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
from model_serving.guard import GuardedService
from model_serving.launcher import service_name
from pipelines.registry import load_registry
from pipelines.features.realtime import CartEvent, CartState
from pipelines.serving import MAX_LIST, ExplainRequest, ExplainResponse, RequestError
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
            # endpoint: an API route or "<other>" (every unknown path shares it), so labels stay bounded.
            rejected=Counter("shopflow_rejected_requests", "Requests refused before parsing (auth, framing, path)",
                             ["model", "endpoint", "status"]),
        )
    return _METRICS


class HTTPError(BentoMLException):
    """An error status raised inside BentoML's machinery (e.g. the batcher's 503)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, error_code=HTTPStatus(status))


def error_response(ctx: bentoml.Context, status: int, message: str):
    """``{"error": message}`` with ``status``, returned from an API function (BentoML's own rendering of a 4xx
    exception wraps the body in a list, which is not the documented shape)."""
    from starlette.responses import JSONResponse

    ctx.response.status_code = status  # BentoML copies the context's status onto the returned response
    return JSONResponse({"error": message}, status_code=status)


class Feedback(ApiModel):
    """An outcome of a served request, for the A/B analysis."""

    unit_id: str = Field(min_length=1, max_length=64, description="Customer (or product) the outcome belongs to.")
    kind: Literal["click", "purchase", "revenue"]
    value: float = Field(1.0, ge=0, le=1e7, description="1 for click/purchase, the amount for revenue.")
    experiment_id: str | None = Field(None, min_length=1, max_length=200,
                                      description="One of this model's experiments (default: the running one).")


class FeedbackAck(ApiModel):
    recorded: bool
    model: str
    experiment_id: str | None


class UploadForm(ApiModel):
    """Multipart upload of an image file (any size, greyscale or RGB)."""

    image: Path = Field(description="PNG or JPEG file (a file part; a text field is refused).")
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


def strict(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` validating strictly (same name and schema): ``"3"`` or ``true`` is not a number, as the published
    schema says, instead of being coerced."""
    from pydantic import ConfigDict

    return type(model.__name__, (model,), {"model_config": ConfigDict(**model.model_config, strict=True),
                                           "__module__": model.__module__, "__doc__": model.__doc__})


def make_service(spec: ModelSpec):
    """A BentoML service class serving ``spec``'s family."""
    serving = spec.serving
    assert serving is not None, spec.name
    model_name = spec.name
    request_model = strict(serving.request)

    class Service:
        def __init__(self) -> None:
            from pipelines.serving import ServingRuntime, release_large_allocations, settle_heap
            from pipelines.settings import get_settings

            release_large_allocations()  # bounded memory under parallel image uploads (see its docstring)
            self.settings = get_settings()
            self.api_key = resolve_api_key(self.settings)
            infer = None
            if serving.batch_infer is not None and self.settings.serving.batching:
                infer = self._make_batcher()
            self.runtime = ServingRuntime(self.settings, spec, infer=infer)
            for version in self.runtime.loaded_versions():
                _metrics()["version"].labels(model_name, self.runtime.fixed_arm or "champion", version).set(1)
            log.info("serving %s (arm=%s, batching=%s)", model_name, self.settings.serving.arm, infer is not None)
            settle_heap()  # no full garbage-collector passes over the loaded libraries and models mid-request

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

        def _answer(self, ctx: bentoml.Context, request: BaseModel, field_names: dict[str, str] | None = None,
                    explain: bool = False) -> Any:
            """The response model, or an error response for a :class:`RequestError` (its field renamed by
            ``field_names``, e.g. to the upload form's name)."""
            m = _metrics()
            try:
                check_bearer(ctx.request.headers.get("authorization"), self.api_key)
                served = self.runtime.explain(request) if explain else self.runtime.handle(request)
            except RequestError as exc:
                m["errors"].labels(model_name, str(exc.status)).inc()
                message = str(exc)
                if field_names and exc.field in field_names:
                    message = field_names[exc.field] + message[len(exc.field):]
                return error_response(ctx, exc.status, message)
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
            return (ExplainResponse if explain else serving.response)(**served.body)

        @staticmethod
        def __openapi__(document: dict) -> dict:
            """Publish the list cap in force (``serving.max_batch``), not only the schema's hard cap."""
            from pipelines.settings import get_settings

            routes = [(serving.route, serving.items_field)] if serving.items_field else []
            if serving.explain is not None:
                routes.append(("/explain", "customer_ids"))
            for route, field_name in routes:
                body = document["paths"][route]["post"]["requestBody"]["content"]["application/json"]
                prop = body["schema"].get("properties", {}).get(field_name)
                if prop is None:  # the schema is a $ref: patch the component it points to
                    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                    prop = document["components"]["schemas"][ref]["properties"][field_name]
                prop["maxItems"] = min(prop.get("maxItems", MAX_LIST), get_settings().serving.max_batch)
            return document

        @bentoml.api(route=serving.route, input_spec=request_model, output_spec=serving.response)
        def predict(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
            return self._answer(ctx, serving.request.model_construct(**fields))

        @bentoml.api(route="/feedback", input_spec=strict(Feedback), output_spec=FeedbackAck)
        def feedback(self, ctx: bentoml.Context, **fields: Any) -> FeedbackAck:
            """Record an outcome (click, purchase, revenue) of a served customer for the running A/B test."""
            from pipelines.rollout import record_outcome

            check_bearer(ctx.request.headers.get("authorization"), self.api_key)
            fb = Feedback.model_construct(**fields)
            experiment = fb.experiment_id or self.runtime.router.assign(fb.unit_id).experiment_id
            if experiment is not None:
                try:
                    record_outcome(self.settings, model_name, fb.unit_id, fb.kind, fb.value,
                                   experiment_id=experiment)
                except ValueError as exc:  # an unknown id, or the experiment of another model
                    return error_response(ctx, 404 if "experiment_id" in str(exc) else 400, str(exc))
            return FeedbackAck(recorded=experiment is not None, model=model_name, experiment_id=experiment)

        if serving.explain is not None:
            @bentoml.api(route="/explain", input_spec=strict(ExplainRequest), output_spec=ExplainResponse)
            def explain(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
                """Each customer's top feature contributions to the champion's margin (TreeSHAP for XGBoost)."""
                return self._answer(ctx, ExplainRequest.model_construct(**fields), explain=True)

        if serving.ingest:
            @bentoml.api(route="/events", input_spec=strict(CartEvent), output_spec=CartState)
            def events(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
                """A cart event, pushed to the online store at once: the next answer for the customer sees it."""
                from pipelines.features.realtime import push_cart_event
                from pipelines.features.store import shared_store

                check_bearer(ctx.request.headers.get("authorization"), self.api_key)
                return push_cart_event(shared_store(self.settings), CartEvent.model_construct(**fields))

        if getattr(serving, "upload_field", None):
            @bentoml.api(route=f"{serving.route}/upload", input_spec=strict(UploadForm), output_spec=serving.response)
            def upload(self, ctx: bentoml.Context, **fields: Any) -> BaseModel:
                """The same answer for an uploaded image file (multipart form field ``image``)."""
                form = UploadForm.model_construct(**fields)
                try:
                    raw = Path(form.image).read_bytes()  # BentoML's temp file of the part (the guard made sure)
                except OSError as exc:
                    return error_response(ctx, 400, f"image: could not read the upload ({exc.strerror})")
                request = serving.request(**{serving.upload_field: base64.b64encode(raw).decode(), "k": form.k})
                return self._answer(ctx, request, {serving.upload_field: "image"})

    Service.predict.doc = serving.summary or spec.description
    Service.__name__ = Service.__qualname__ = class_name(model_name)
    Service.__module__ = __name__
    Service.__doc__ = f"{model_name}: {spec.description}"
    # Several request threads: concurrent requests must be in flight together for the adaptive batcher to merge
    # them (one thread would serialise them before they reach it).
    # GuardedService wraps the app in model_serving.guard.Guard: auth, Content-Type, body limits and bounded
    # metrics labels are settled before BentoML parses anything.
    return bentoml.service(name=service_name(model_name), traffic={"timeout": 60},
                           threads=SERVICE_THREADS, service_class=GuardedService)(Service)


for _name, _spec in load_registry().items():
    if _spec.serving is not None:
        globals()[class_name(_name)] = make_service(_spec)
del _name, _spec
