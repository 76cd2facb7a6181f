"""Discovers model families: every module in ``pipelines/models/`` exporting ``SPEC`` is one family."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from pipelines import models
from pipelines.spec import ModelSpec


@lru_cache(maxsize=1)
def load_registry() -> dict[str, ModelSpec]:
    """``{name: spec}`` for every family module, sorted by name."""
    specs: dict[str, ModelSpec] = {}
    for mod in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{mod.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, ModelSpec):
            if spec.name in specs:
                raise ValueError(f"two model modules declare the name {spec.name!r}")
            specs[spec.name] = spec
    return dict(sorted(specs.items()))


def get_spec(name: str) -> ModelSpec:
    """The spec of one family.

    Raises:
        KeyError: naming the known families when ``name`` is not one of them.
    """
    registry = load_registry()
    if name not in registry:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(registry) or 'none'}")
    return registry[name]
