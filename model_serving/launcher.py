"""Builds the ``bentoml serve`` command for a model family (service ``model_serving.<model>``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Settings


def service_target(model: str) -> str:
    """Import path of the family's Bento service, e.g. ``model_serving.churn:ChurnService``."""
    if importlib.util.find_spec(f"model_serving.{model}") is None:
        raise KeyError(f"no Bento service for model {model!r} (expected module model_serving/{model}.py)")
    return f"model_serving.{model}:{model.capitalize()}Service"


def serve_command(model: str, settings: Settings, port: int, host: str = "127.0.0.1") -> tuple[list[str], dict]:
    """Command and environment that serve ``model`` with the current settings."""
    import os

    bentoml_bin = str(Path(sys.executable).with_name("bentoml"))
    env = dict(os.environ)
    env.update({"SHOPFLOW_HOME": str(settings.home.resolve()), "SHOPFLOW_PROFILE": settings.profile})
    cmd = [bentoml_bin, "serve", service_target(model), "--port", str(port), "--host", host,
           "--working-dir", str(PROJECT_ROOT)]
    return cmd, env
