"""Builds the ``bentoml serve`` / ``bentoml build`` commands of a model family."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Settings


def service_target(model: str) -> str:
    """Import path of the family's Bento service, e.g. ``model_serving.service:ChurnService``.

    Raises:
        KeyError: naming the served families when ``model`` is not one of them.
    """
    from model_serving.bentofiles import served_models
    from model_serving.service import class_name

    if model not in served_models():
        raise KeyError(f"no Bento service for model {model!r}; served models: {', '.join(served_models())}")
    return f"model_serving.service:{class_name(model)}"


def service_name(model: str) -> str:
    """BentoML's name of the family's service, e.g. ``shopflow-churn``."""
    return f"shopflow-{model.replace('_', '-')}"


def bentoml_config(settings: Settings) -> dict:
    """Per-service BentoML configuration from ``settings.serving`` (worker processes, access log)."""
    workers = settings.serving.workers or min(os.cpu_count() or 1, 4)
    return {"workers": workers, "logging": {"access": {"enabled": settings.serving.access_log}}}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def serve_command(model: str, settings: Settings, port: int, host: str = "127.0.0.1") -> tuple[list[str], dict]:
    """Command and environment that serve ``model`` with the current settings."""
    env = dict(os.environ)
    env.update({"SHOPFLOW_HOME": str(settings.home.resolve()), "SHOPFLOW_PROFILE": settings.profile})
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps({"services": {service_name(model): bentoml_config(settings)}})
    cmd = [_bin("bentoml"), "serve", service_target(model), "--port", str(port), "--host", host,
           "--working-dir", str(PROJECT_ROOT)]
    return cmd, env


def build_command(model: str) -> list[str]:
    """``bentoml build`` of the family's generated bentofile (run from the project root)."""
    from model_serving.bentofiles import bentofile_path

    service_target(model)
    return [_bin("bentoml"), "build", "-f", str(bentofile_path(model).relative_to(PROJECT_ROOT)), "."]
