"""Discovers model families: every package in ``pipelines/models/`` exporting ``SPEC`` is one family.

Loading the registry imports each family package, whose ``__init__`` only re-exports ``SPEC``: no heavy library
(torch, MLflow, Feast, ...) is imported and nothing is written, so DAG parsing and the CLI stay fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from pipelines import models
from pipelines.data.schema import FamilyData
from pipelines.spec import ModelSpec


@lru_cache(maxsize=1)
def load_registry() -> dict[str, ModelSpec]:
    """``{name: spec}`` for every family package, sorted by name."""
    specs: dict[str, ModelSpec] = {}
    for mod in pkgutil.iter_modules(models.__path__):
        if not mod.ispkg:  # a family is a package; tests/unit/test_layout.py fails on stray modules here
            continue
        module = importlib.import_module(f"{models.__name__}.{mod.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, ModelSpec):
            if spec.name in specs:
                raise ValueError(f"two model packages declare the name {spec.name!r}")
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


def family_data() -> dict[str, FamilyData]:
    """Which tables each registered family needs (its spec's ``data``), checked by the import, the gate's report
    and each family's ``prepare`` (see :mod:`pipelines.data.kinds`)."""
    return {name: spec.data for name, spec in load_registry().items() if spec.data is not None}
