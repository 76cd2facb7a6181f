"""API-key auth for predict endpoints: ``Authorization: Bearer <SHOPFLOW_API_KEY>``."""

from __future__ import annotations

import hmac
import os
import secrets
import time
from http import HTTPStatus

from bentoml.exceptions import BentoMLException

from pipelines.settings import Settings


class Unauthorized(BentoMLException):
    """401: the request has no valid API key."""

    error_code = HTTPStatus.UNAUTHORIZED


def resolve_api_key(settings: Settings) -> str:
    """The key clients must send.

    ``SHOPFLOW_API_KEY`` wins. Without it, the local profile keeps a random key in ``<home>/api_key`` (mode 0600)
    so a new user is never served unauthenticated; the production profile refuses to start without one.
    """
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    if settings.profile == "production":
        raise RuntimeError("SHOPFLOW_API_KEY must be set in the production profile")
    path = settings.home / "api_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
    for _ in range(50):  # the creator may not have written it yet
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it or set SHOPFLOW_API_KEY")


def check_bearer(header: str | None, key: str) -> None:
    """Raise :class:`Unauthorized` unless ``header`` is ``Bearer <key>`` (constant-time comparison)."""
    scheme, _, token = (header or "").partition(" ")
    # Bytes, not str: compare_digest refuses non-ASCII str, and a client's header must never cause a 500.
    if scheme.lower() != "bearer" or not token or not hmac.compare_digest(
            token.strip().encode("utf-8", "surrogateescape"), key.encode()):
        raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <SHOPFLOW_API_KEY>'")
