"""Which model families a batch can train, and the per-batch manifest.

Every table of a batch is optional (see :func:`pipelines.registry.family_data`): a user brings the data kinds
they have, e.g. only ratings, or only a transaction log. This module answers, for a batch, which families can
train on it and, for the others, why not (``"missing table customers"``), so that the import, the validation
report and each family's ``prepare`` say the same thing.

The manifest (``manifest.json`` in the batch folder, written by the import) records how the batch is to be judged
(``historical``: freshness measured at the batch's own newest timestamp instead of now).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import UserError
from pipelines.registry import family_data

MANIFEST = "manifest.json"


class MissingDataError(UserError, ValueError):
    """A family was asked to train on a batch that lacks the data it needs; the message says what is missing."""


@dataclass(frozen=True)
class Support:
    """Whether one family can train on a batch; ``reason`` says why not (empty when it can)."""

    family: str
    trainable: bool
    reason: str = ""


def _nonempty(tables: Mapping[str, pd.DataFrame], name: str) -> bool:
    return name in tables and len(tables[name]) > 0


def _missing(tables: Mapping[str, pd.DataFrame], name: str) -> str:
    return f"missing table {name}" if name not in tables else f"table {name} is empty"


def family_support(tables: Mapping[str, pd.DataFrame]) -> dict[str, Support]:
    """Per family of :func:`~pipelines.registry.family_data`: can it train on these tables, and if not, why.

    Only cheap, table-level checks are made here (tables present and non-empty, the few columns a family cannot
    do without); each family's ``prepare`` still checks that there is enough history for its parameters.

    Args:
        tables: The batch's tables by name (absent tables simply are not keys).
    """
    out: dict[str, Support] = {}
    for family, need in family_data().items():
        reasons = [_missing(tables, t) for t in need.all_of if not _nonempty(tables, t)]
        if need.any_of and not any(_nonempty(tables, t) for t in need.any_of):
            reasons.append("missing table " + " or ".join(need.any_of))
        if not reasons and need.check is not None:
            reasons += need.check(tables)
        out[family] = Support(family, not reasons, "; ".join(reasons))
    return out


def describe(support: Mapping[str, Support]) -> list[str]:
    """One line per family for reports: ``churn: yes`` / ``pricing: no (missing table products)``."""
    return [f"{s.family}: yes" if s.trainable else f"{s.family}: no ({s.reason})" for s in support.values()]


def require(ctx: Any, family: str) -> None:
    """Raise :class:`MissingDataError` when the batch of ``ctx`` lacks tables that ``family`` needs.

    Args:
        ctx: A :class:`pipelines.spec.DataContext` (its table cache is reused).
        family: A key of :func:`~pipelines.registry.family_data`.
    """
    from pipelines.data.io import present_tables

    need = family_data()[family]
    # Every present table, read only if a check looks at it (a family's column check may use any table).
    support = family_support(_LazyTables(ctx, present_tables(ctx.batch_dir)))[family]
    if not support.trainable:
        raise MissingDataError(
            f"{family} cannot train on batch {ctx.batch_id}: {support.reason}. It needs {need.kind} "
            "(see docs/data-schema.md)."
        )


class _LazyTables(Mapping):
    """The batch's tables by name, each read (through the context's cache) on first access."""

    def __init__(self, ctx: Any, names: list[str]) -> None:
        self._ctx, self._names = ctx, list(names)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._names:
            raise KeyError(name)
        return self._ctx.table(name)

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def table_or_empty(ctx: Any, name: str) -> pd.DataFrame:
    """The batch's table ``name``, or an empty table with the schema's columns when the batch has none."""
    from pipelines.data.io import empty_table, table_path

    return ctx.table(name) if table_path(ctx.batch_dir, name) is not None else empty_table(name)


def read_manifest(batch_dir: Path) -> dict[str, Any]:
    """The batch's manifest (``{}`` when there is none, e.g. generated batches)."""
    path = Path(batch_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def manifest_bytes(historical: bool) -> bytes:
    """Canonical manifest content (stable bytes: the manifest is part of the batch's content hash)."""
    return (json.dumps({"historical": bool(historical)}, sort_keys=True) + "\n").encode()
