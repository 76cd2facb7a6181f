"""The reference for serving overhead: a bare uvicorn ASGI app over the same serving core as the Bento.

It parses the JSON body with the family's request model, calls the same ``ServingRuntime.handle`` (features, model,
A/B routing; no adaptive batching) and writes the JSON answer; no auth, metrics, tracing or access log. Whatever the
Bento costs beyond this app is the cost of BentoML and ShopFlow's guard.

Usage: SHOPFLOW_HOME=... BARE_MODEL=churn python scripts/bare_app.py --port 8123 [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_state: dict = {}


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/readyz":
        return await _send(send, 200, b"ok")
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    from pydantic import ValidationError

    from pipelines.serving import RequestError

    spec, runtime = _state["spec"], _state["runtime"]
    try:
        request = spec.serving.request.model_validate_json(b"".join(chunks))
        body = runtime.handle(request).body
        status, out = 200, spec.serving.response(**body).model_dump_json().encode()
    except ValidationError as exc:
        status, out = 400, json.dumps({"error": str(exc)}).encode()
    except RequestError as exc:
        status, out = exc.status, json.dumps({"error": str(exc)}).encode()
    await _send(send, status, out)


async def _send(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _start() -> None:
    from pipelines.registry import get_spec
    from pipelines.serving import ServingRuntime
    from pipelines.settings import get_settings

    from pipelines.serving import settle_heap

    spec = get_spec(os.environ["BARE_MODEL"])
    _state.update(spec=spec, runtime=ServingRuntime(get_settings(), spec))
    settle_heap()  # the same process tuning as the Bento's workers


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    uvicorn.run("bare_app:app", host="127.0.0.1", port=args.port, workers=args.workers, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
