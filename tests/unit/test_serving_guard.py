"""The serving platform's request guard, image decoding limits and process supervision, without a server."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from model_serving.auth import Unauthorized, check_bearer
from model_serving.guard import Guard, Limits, Route, bearer_ok, document, media_type
from pipelines.serving import RequestError, TooLarge, decode_image
from pipelines.settings import Settings
from pipelines.supervise import Supervisor, check_port

KEY = "k3y"


def test_bearer_compare_takes_any_bytes():
    assert bearer_ok(b"Bearer k3y", b"k3y") and bearer_ok(b"bearer  k3y ", b"k3y")
    for header in (None, b"", b"Bearer", b"Basic k3y", b"Bearer k3yy", "Bearer é".encode(), b"Bearer \xff\xfe"):
        assert not bearer_ok(header, b"k3y"), header
    with pytest.raises(Unauthorized):
        check_bearer("Bearer é\udcff", KEY)  # a non-ASCII header is a 401, never a TypeError (500)
    check_bearer("Bearer k3y", KEY)


def test_media_type_parsing():
    assert media_type(b"application/json; charset=utf-8") == ("application/json", {"charset": "utf-8"})
    assert media_type(b'multipart/form-data; boundary="ab c"') == ("multipart/form-data", {"boundary": "ab c"})
    assert media_type(None) == ("", {})


async def _inner(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = json.dumps({"path": scope["path"], "echo": body.decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": out})


def _guard(**limits) -> Guard:
    routes = {"/predict": Route(), "/up": Route(multipart=True, file_fields=("image",))}
    return Guard(_inner, "churn", routes, frozenset({"/healthz"}), frozenset({"/static_content/a.css"}),
                 key=lambda: KEY, limits=Limits(**limits))


def _call(guard, path, headers=(), chunks=(b"",), method="POST", delay=0.0):
    """Run one request through the guard; returns ``(status, body)``."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(delay or 3600)  # a client that stops sending
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method,
             "headers": [(k.lower().encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers]}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


AUTH = ("Authorization", f"Bearer {KEY}")
JSON = ("Content-Type", "application/json")


def test_guard_checks_the_key_before_reading_anything():
    guard = _guard()
    for headers in ((), (("Authorization", b"Bearer \xc3\xa9\xff"),), (("Authorization", "Bearer nope"), JSON)):
        status, body = _call(guard, "/predict", headers, chunks=(b"{not json",))
        assert status == 401 and b"API key" in body
    # Open paths and their static files pass without a key; other paths are one bounded 404.
    assert _call(guard, "/healthz", method="GET")[0] == 200
    assert _call(guard, "/static_content/a.css", method="GET")[0] == 200
    assert _call(guard, "/static_content/../../etc/passwd", method="GET")[0] == 404
    assert _call(guard, "/random/path", (AUTH,), method="GET")[0] == 404


def test_guard_framing_rules():
    guard = _guard(max_body_bytes=100, body_idle_timeout_s=0.2)
    ok = _call(guard, "/predict", (AUTH, JSON), chunks=(b'{"a":', b" 1}"))
    assert ok == (200, json.dumps({"path": "/predict", "echo": '{"a": 1}'}).encode())
    assert _call(guard, "/predict", (AUTH, JSON), method="GET")[0] == 405
    assert _call(guard, "/predict", (AUTH, ("Content-Type", "text/plain")))[0] == 415
    assert _call(guard, "/predict", (AUTH,))[0] == 415
    assert _call(guard, "/predict", (AUTH, ("Content-Type", "multipart/form-data")))[0] == 415
    assert _call(guard, "/up", (AUTH, ("Content-Type", "multipart/form-data")))[0] == 400  # no boundary
    assert _call(guard, "/up", (AUTH, JSON))[0] == 415
    assert _call(guard, "/predict", (AUTH, JSON, ("Content-Length", "101")))[0] == 413
    assert _call(guard, "/predict", (AUTH, JSON, ("Content-Length", "x")))[0] == 400
    assert _call(guard, "/predict", (AUTH, JSON), chunks=(b"x" * 60, b"x" * 60))[0] == 413  # chunked, no length


def test_guard_times_out_a_body_that_stops_arriving():
    guard = _guard(body_idle_timeout_s=0.3)
    t0 = time.perf_counter()
    messages = [{"type": "http.request", "body": b'{"cus', "more_body": True}]
    status, body = _call_stalled(guard, messages)
    assert status == 408 and b"timed out" in body and time.perf_counter() - t0 < 2


def _call_stalled(guard, messages):
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "method": "POST",
             "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json"),
                         (b"content-length", b"100")]}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "xYz"
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_guard_upload_fields_must_be_files_and_appear_once():
    guard = _guard(max_body_bytes=10_000)
    for parts, status in (([("image", "x.png", b"PNG"), ("k", None, b"3")], 200),
                          ([("image", None, b"/etc/passwd")], 400),
                          ([("image", None, b"http://127.0.0.1:1/x")], 400),
                          ([("image", "x.png", b"PNG"), ("k", None, b"3"), ("k", None, b"4")], 400)):
        body, ctype = _multipart(parts)
        got, text = _call(guard, "/up", (AUTH, ("Content-Type", ctype)), chunks=(body,))
        assert got == status, (parts, text)


def test_document_declares_auth_and_every_guard_answer():
    spec = {"paths": {"/predict": {"post": {"requestBody": {"content": {}}, "responses": {"200": {}}}},
                      "/healthz": {"get": {"responses": {"200": {}}}}}, "components": {"schemas": {}}}
    doc = document(spec, {"/predict"})
    op = doc["paths"]["/predict"]["post"]
    assert op["security"] == [{"bearer": []}] and op["requestBody"]["required"] is True
    assert {"401", "405", "408", "413", "415"} <= set(op["responses"])
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_checks_pixels_before_decoding_and_shrinks(tmp_path):
    settings = Settings(home=tmp_path, serving={"max_image_pixels": 1000 * 1000, "max_image_side": 64})
    big = _png(1001, 1000)
    with pytest.raises(TooLarge, match="image: 1001x1000 pixels"):
        decode_image(big, "image", settings=settings)
    pixels = decode_image(_png(1000, 500), "image", settings=settings)
    assert pixels.shape == (32, 64, 3) and pixels.dtype == np.uint8
    assert decode_image(_png(20, 10, "L"), "image", settings=settings).shape == (10, 20)
    assert decode_image(_png(20, 10, "RGBA"), "image", settings=settings).shape == (10, 20, 3)
    with pytest.raises(TooLarge, match="image: 5 bytes; at most 4"):
        decode_image(b"12345", "image", max_bytes=4, settings=settings)
    for junk in (b"", b"GIF89a....", b"\x89PNG\r\n\x1a\n broken"):
        with pytest.raises(RequestError, match="image: not a readable PNG/JPEG"):
            decode_image(junk, "image", settings=settings)


def test_decodes_run_at_most_n_at_once(tmp_path, monkeypatch):
    from PIL import Image

    settings = Settings(home=tmp_path, serving={"max_concurrent_decodes": 2})
    running, peak, lock = [0], [0], threading.Lock()
    real_open = Image.open

    def slow_open(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", slow_open)
    threads = [threading.Thread(target=decode_image, args=(_png(8, 8), "image"), kwargs={"settings": settings})
               for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert peak[0] == 2


def test_check_port_one_line_errors():
    for port in (0, -1, 65536, 99999999):
        with pytest.raises(ValueError, match="--port must be between 1 and 65535"):
            check_port("127.0.0.1", port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ValueError, match="Address already in use"):
            check_port("127.0.0.1", s.getsockname()[1])
    with pytest.raises(ValueError, match="--host"):
        check_port("no such host.invalid", 8000)


def test_supervisor_stops_the_whole_tree_including_escaped_sessions():
    script = ("import subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
              "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # a child that ignores SIGTERM
              "time.sleep(300)\n")
    sup = Supervisor(grace=1.0)
    proc = sup.start([sys.executable, "-c", script])
    deadline = time.time() + 10
    while len(psutil.Process(proc.pid).children(recursive=True)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    assert len(tree) == 3
    t0 = time.time()
    sup.stop()
    assert time.time() - t0 < 5
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
