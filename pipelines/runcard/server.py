"""The run-card server of ``shopflow ui``: cards, GX Data Docs and monitoring reports, read-only, on localhost.

Routes: ``/`` (every card, newest first), ``/runs/<run>`` (one card), ``/gx/<path>`` (files under the GX folder:
Data Docs), ``/monitoring/<file>`` (monitoring reports). Nothing else of the ShopFlow home (databases, the API key)
is reachable: each prefix maps to one folder and a path that resolves outside it is a 404.

Run as ``python -m pipelines.runcard.server --port 8090 --airflow URL --mlflow URL``.
"""

from __future__ import annotations

import argparse
import mimetypes
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipelines.settings import Settings, get_settings


def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` (no ``..`` or symlink escape), else ``None``."""
    root = root.resolve()
    path = (root / relative).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


class Handler(BaseHTTPRequestHandler):
    server_version = "shopflow-cards"

    def __init__(self, *args, settings: Settings, airflow: str, mlflow: str, **kwargs) -> None:
        self.settings, self.airflow, self.mlflow = settings, airflow, mlflow
        super().__init__(*args, **kwargs)

    def log_message(self, fmt: str, *args) -> None:  # quiet: the supervisor keeps stdout as a log file
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        from pipelines.runcard.card import list_cards, render_card, render_index

        path = unquote(urlsplit(self.path).path)
        s = self.settings
        if path in ("/", "/index.html"):
            return self._send(200, render_index(list_cards(s), self.airflow, self.mlflow).encode())
        if path.startswith("/runs/"):
            run_id = path.removeprefix("/runs/").removesuffix(".html")
            card = next((c for c in list_cards(s) if c["run_id"] == run_id), None)
            if card is None:
                return self._send(404, f"no run card {run_id!r}".encode(), "text/plain; charset=utf-8")
            return self._send(200, render_card(card, self.airflow, self.mlflow).encode())
        roots = {"/gx/": s.gx_dir, "/monitoring/": s.monitoring_dir / "reports"}
        for prefix, root in roots.items():
            if path.startswith(prefix) and (file := _inside(root, path.removeprefix(prefix))) is not None:
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return self._send(200, file.read_bytes(), kind + ("; charset=utf-8" if kind.startswith("text/") else ""))
        return self._send(404, b"not found", "text/plain; charset=utf-8")


def make_server(settings: Settings, port: int, airflow: str, mlflow: str, host: str = "127.0.0.1"):
    return ThreadingHTTPServer((host, port), partial(Handler, settings=settings, airflow=airflow, mlflow=mlflow))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--airflow", default="http://127.0.0.1:8080")
    parser.add_argument("--mlflow", default="http://127.0.0.1:5000")
    args = parser.parse_args(argv)
    server = make_server(get_settings(), args.port, args.airflow, args.mlflow)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
