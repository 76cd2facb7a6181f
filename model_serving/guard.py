"""The outermost ASGI layer of every ShopFlow Bento: auth, request framing and bounded metrics labels.

BentoML 1.4 parses and validates a request body before the API function runs, and its own middlewares (Prometheus,
tracing) sit outside anything ``add_asgi_middleware`` adds. :class:`Guard` therefore wraps the whole application
(see :class:`GuardedService`), and for every HTTP request, before BentoML sees it:

* paths that are neither an API route nor an open path (health, metrics, docs and their static files) get a 404
  here, so they never become a Prometheus label of their own;
* API routes need ``Authorization: Bearer <key>`` (compared as bytes: any header gives 401, never a 500), checked
  before the body is read;
* the ``Content-Type`` must be the route's own (JSON, or ``multipart/form-data`` with a boundary for uploads):
  anything else is 415, a multipart type without boundary 400;
* the body is read here with a size limit (413) and a time limit (a body shorter than its ``Content-Length`` is a
  408 after a few seconds, not a hang), then handed on;
* an upload's file fields must be real file parts: a text field ``image=/etc/passwd`` or ``image=http://...`` is a
  400 (BentoML would otherwise fetch it as a URL).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import attrs
import bentoml

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

OPEN_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/schema.json"})
"""Paths served without a key (when the app has them): probes, metrics and the API docs."""
OTHER = "<other>"
"""The one metrics label every path that is not a route shares."""


@dataclass(frozen=True)
class Route:
    """What an API route accepts."""

    multipart: bool = False
    """``multipart/form-data`` (uploads) instead of JSON."""
    file_fields: tuple[str, ...] = ()
    """Form fields that must be file parts."""
    list_fields: tuple[str, ...] = ()
    """Form fields that may repeat (arrays); any other field may appear once."""


@dataclass
class Limits:
    max_body_bytes: int = 8_000_000
    body_idle_timeout_s: float = 5.0
    """Longest wait for the next chunk of a body."""
    body_timeout_s: float = 30.0
    """Longest time to receive a whole body."""


class Reject(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def bearer_ok(header: bytes | None, key: bytes) -> bool:
    """``header`` is ``Bearer <key>`` (raw header bytes; constant-time comparison of the token)."""
    if not header or not key:
        return False
    scheme, _, token = header.strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key)


def media_type(header: bytes | None) -> tuple[str, dict[str, str]]:
    """``("multipart/form-data", {"boundary": "x"})`` from a raw Content-Type header (lower-cased type)."""
    text = (header or b"").decode("latin-1")
    kind, *params = text.split(";")
    parsed = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep:
            parsed[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), parsed


@dataclass
class Guard:
    """ASGI wrapper; see the module docstring.

    Args:
        app: The BentoML application.
        model: Family name (metrics label).
        routes: API route path -> what it accepts.
        open_paths: Exact paths served without a key.
        static: Files under the app's static mounts (served without a key; anything else there is a 404).
        key: Callable returning the API key (resolved on first use, inside the worker).
        limits: Body size and time limits.
    """

    app: Callable
    model: str
    routes: dict[str, Route]
    open_paths: frozenset[str]
    static: frozenset[str]
    key: Callable[[], str]
    limits: Limits = field(default_factory=Limits)
    _key: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path in self.open_paths or path in self.static:
            return await self.app(scope, receive, send)
        route = self.routes.get(path)
        try:
            if route is None:
                raise Reject(404, f"no route {path[:100]!r}; see /docs.json")
            body = await self._admit(scope, receive, route)
        except Reject as exc:
            return await self._reject(send, path if route else OTHER, exc)
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive, route: Route) -> bytes:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        if self._key is None:
            self._key = self.key().encode()
        if not bearer_ok(headers.get(b"authorization"), self._key):
            raise Reject(401, "missing or invalid API key: send 'Authorization: Bearer <SHOPFLOW_API_KEY>'",
                         {"www-authenticate": "Bearer"})
        if scope["method"] != "POST":
            raise Reject(405, f"{scope['method']} not allowed; use POST", {"allow": "POST"})
        kind, params = media_type(headers.get(b"content-type"))
        if route.multipart:
            if kind != "multipart/form-data":
                raise Reject(415, f"Content-Type: expected multipart/form-data, got {kind or 'none'!r}")
            if not params.get("boundary"):
                raise Reject(400, "Content-Type: multipart/form-data needs a boundary parameter")
        elif kind != "application/json":
            raise Reject(415, f"Content-Type: expected application/json, got {kind or 'none'!r}")
        length = headers.get(b"content-length")
        expected = None
        if length is not None:
            if not length.strip().isdigit():
                raise Reject(400, "Content-Length: not a number")
            expected = int(length)
            if expected > self.limits.max_body_bytes:
                raise Reject(413, f"body: {expected} bytes; at most {self.limits.max_body_bytes}")
        body = await self._read(receive, expected)
        if route.multipart:
            await _check_form(scope, body, route)
        return body

    async def _read(self, receive: Receive, expected: int | None) -> bytes:
        chunks, size = [], 0
        deadline = time.monotonic() + self.limits.body_timeout_s
        while True:
            wait = min(self.limits.body_idle_timeout_s, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except asyncio.TimeoutError:
                got = f"{size} of {expected}" if expected is not None else f"{size}"
                raise Reject(408, f"body: timed out after receiving {got} bytes", {"connection": "close"}) from None
            if message["type"] == "http.disconnect":
                raise Reject(400, "body: client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise Reject(413, f"body: more than {self.limits.max_body_bytes} bytes", {"connection": "close"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reject(self, send: Send, endpoint: str, exc: Reject) -> None:
        _count_rejection(self.model, endpoint, exc.status)
        body = json.dumps({"error": exc.message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _check_form(scope: Scope, body: bytes, route: Route) -> None:
    """400 unless the form parses, its file fields are file parts and only array fields repeat."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    request = Request(scope, _replay(body, _never))
    try:
        form = await request.form()
    except Exception as exc:  # python-multipart / starlette parse errors of a malformed body
        raise Reject(400, f"body: not a valid multipart form ({type(exc).__name__})") from None
    try:
        for name in set(form.keys()):
            values = form.getlist(name)
            if len(values) > 1 and name not in route.list_fields:
                raise Reject(400, f"{name[:100]}: given {len(values)} times; expected once")
            if name in route.file_fields and not all(isinstance(v, UploadFile) for v in values):
                raise Reject(400, f"{name}: must be an uploaded file (a file part with a filename), "
                                  "not a text field")
    finally:
        await form.close()


async def _never() -> dict:
    return {"type": "http.disconnect"}


def _count_rejection(model: str, endpoint: str, status: int) -> None:
    try:
        from model_serving.service import _metrics

        _metrics()["rejected"].labels(model, endpoint, str(status)).inc()
    except Exception:  # metrics must never turn a 4xx into a 500
        log.debug("could not count a rejection", exc_info=True)


def static_files(app: Any) -> frozenset[str]:
    """URL paths of every file under the Starlette app's static mounts (e.g. the docs page's assets)."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    found = set()
    for route in getattr(app, "routes", []):
        if isinstance(route, Mount) and isinstance(route.app, StaticFiles) and route.app.directory:
            root = Path(route.app.directory)
            for file in root.rglob("*"):
                if file.is_file():
                    found.add(f"{route.path.rstrip('/')}/{file.relative_to(root).as_posix()}")
    return frozenset(found)


def route_paths(app: Any) -> set[str]:
    return {route.path for route in getattr(app, "routes", []) if hasattr(route, "path")}


ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"},
                               "detail": {"description": "Validation details (field locations and messages)."}}}
GUARD_RESPONSES = {
    "401": "Missing or invalid API key (checked before the body is read)",
    "405": "Method not allowed (the endpoint takes POST)",
    "408": "The body did not arrive in time",
    "413": "Body, list or image over the limit",
    "415": "Unsupported Content-Type",
}


def document(spec: dict[str, Any], api_paths: set[str]) -> dict[str, Any]:
    """The OpenAPI document as served: Bearer auth on the API routes, the guard's answers and one error shape.

    BentoML's own document has no security scheme, lists only 400/404/500 and types ``detail`` as a string
    although validation errors carry a list.
    """
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer", "description": "SHOPFLOW_API_KEY (see docs/serving.md)."}
    schemas = components.setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError", "Error"):
        schemas[name] = {**ERROR_SCHEMA, "title": name}
    for path, operations in spec.get("paths", {}).items():
        if path not in api_paths:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
            responses = operation.setdefault("responses", {})
            for status, text in GUARD_RESPONSES.items():
                responses.setdefault(status, {"description": text, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    return spec


@attrs.define
class GuardedService(bentoml.Service):
    """A BentoML service whose ASGI app is wrapped by :class:`Guard` (outside BentoML's own middlewares) and
    whose OpenAPI document says so (:func:`document`)."""

    @property
    def openapi_spec(self) -> Any:
        from bentoml._internal.service.openapi.specification import OpenAPISpecification
        from bentoml._internal.utils.uri import join_paths

        base = super().openapi_spec
        paths = {join_paths(self.path_prefix, api.route) for api in self.apis.values()}
        doc = document(json.loads(json.dumps(base.asdict())), paths)
        if hasattr(self.inner, "__openapi__"):  # the service's own additions
            doc = self.inner.__openapi__(doc)
        return _Spec(**{f.name: getattr(base, f.name) for f in attrs.fields(OpenAPISpecification)}, document=doc)

    def to_asgi(self, is_main: bool = True) -> Any:
        from bentoml._internal.utils.uri import join_paths

        from model_serving.auth import resolve_api_key
        from pipelines.settings import get_settings

        app = super().to_asgi(is_main=is_main)
        routes = {}
        for api in self.apis.values():
            files = tuple(getattr(api.input_spec, "multipart_fields", None) or ())
            props = api.input_spec.model_json_schema().get("properties", {}) if files else {}
            lists = tuple(name for name, schema in props.items() if schema.get("type") == "array")
            routes[join_paths(self.path_prefix, api.route)] = Route(multipart=bool(files), file_fields=files,
                                                                    list_fields=lists)
        settings = get_settings()
        limits = Limits(max_body_bytes=settings.serving.max_body_bytes,
                        body_idle_timeout_s=settings.serving.body_idle_timeout_s)
        model = self.name.removeprefix("shopflow-").replace("-", "_")
        return Guard(app, model=model, routes=routes, open_paths=frozenset(OPEN_PATHS & route_paths(app)),
                     static=static_files(app), key=lambda: resolve_api_key(get_settings()), limits=limits)


def _spec_class():
    from bentoml._internal.service.openapi.specification import OpenAPISpecification

    @attrs.define
    class Spec(OpenAPISpecification):
        document: dict = attrs.field(factory=dict)

        def asdict(self) -> dict[str, Any]:
            return self.document

    import yaml

    yaml.add_representer(Spec, lambda dumper, spec: dumper.represent_dict(spec.asdict()))  # for `bentoml build`
    return Spec


_Spec = _spec_class()
