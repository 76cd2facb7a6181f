"""The served-request log: a bounded, sampled record of what each service answered, read by the monitor.

Each service process appends to its own files under ``<monitoring_dir>/served/<model>/`` (no state shared between
services or processes): ``<host>-<pid>.jsonl`` holds the newest rows and rotates to ``<host>-<pid>.1.jsonl`` at
``monitor.serve_sample_rows``, so a process keeps at most twice that. Files untouched for
:data:`RETENTION_DAYS` are removed when a service starts. Two kinds of row, one JSON object per line:

* ``{"kind": "features", "t", "version", "unit", "x": {feature: value}}``: the feature vector a model scored;
* ``{"kind": "prediction", "t", "version", "arm", "unit", "y": {field: value}}``: the numeric fields of an answer.

Logging never fails a request: an I/O error disables the log of that process (with one warning).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.settings import Settings

log = logging.getLogger(__name__)

RETENTION_DAYS = 14
_RESPONSE_FIELDS = {"model", "model_version", "arm", "experiment_id"}
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every row: ``json.dumps`` with arguments builds a new encoder per call (most of the cost)."""


def served_dir(settings: Settings, model: str) -> Path:
    return settings.monitoring_dir / "served" / model


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _numbers(item: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in item.items():
        if key not in _RESPONSE_FIELDS and (number := _number(value)) is not None:
            out[key] = number
    return out


def _unit(item: dict[str, Any]) -> str | None:
    return next((str(v) for k, v in item.items() if k.endswith("_id") and isinstance(v, str)), None)


class ServedLog:
    """The served-request log of one service process (thread-safe)."""

    def __init__(self, settings: Settings, model: str) -> None:
        m = settings.monitor
        self.rate, self.max_rows, self.max_items = m.serve_sample_rate, m.serve_sample_rows, m.serve_sample_items
        self.dir = served_dir(settings, model)
        self.path = self.dir / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._fh = None
        self._rows = 0
        self.enabled = self.rate > 0

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - RETENTION_DAYS * 86400
        for old in self.dir.glob("*.jsonl"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._lock:
            if not self.enabled:
                return
            try:
                if self._fh is None:
                    self._open()
                if self._rows + len(rows) > self.max_rows:
                    self._fh.close()
                    os.replace(self.path, self.path.with_suffix(".1.jsonl"))
                    self._fh, self._rows = open(self.path, "w", encoding="utf-8"), 0
                self._fh.write("".join(_ENCODE(r) + "\n" for r in rows))
                self._fh.flush()
                self._rows += len(rows)
            except OSError as exc:
                self.enabled = False
                log.warning("served-request log %s disabled: %s", self.path, exc)

    def _sampled(self) -> bool:
        with self._lock:
            return self.enabled and (self.rate >= 1 or self._rng.random() < self.rate)

    def features(self, version: str, units, names: list[str], matrix) -> None:
        """Log the feature rows a model of ``version`` scored (``matrix``: one row per unit, columns ``names``)."""
        if not self._sampled():
            return
        import numpy as np

        now = time.time()
        block = np.asarray(matrix[: self.max_items], dtype=np.float64)
        values = np.where(np.isfinite(block), block, np.nan).tolist()  # one conversion, not one per value
        rows = [{"kind": "features", "t": now, "version": version, "unit": str(u),
                 "x": {n: (None if v != v else v) for n, v in zip(names, row, strict=True)}}
                for u, row in zip(units, values)]
        self._write(rows)

    def answer(self, body: dict[str, Any], unit: str | None = None) -> None:
        """Log the numeric fields of a response (each item of a list response)."""
        if not self._sampled():
            return
        now = time.time()
        items = body.get("predictions")
        if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
            rows = [{"kind": "prediction", "t": now, "version": str(i.get("model_version", body.get("model_version"))),
                     "arm": i.get("arm", body.get("arm")), "unit": _unit(i), "y": _numbers(i)}
                    for i in items[: self.max_items]]
        else:
            rows = [{"kind": "prediction", "t": now, "version": str(body.get("model_version")),
                     "arm": body.get("arm"), "unit": unit, "y": _numbers(body)}]
        self._write([r for r in rows if r["y"]])


def read_served(settings: Settings, model: str, kind: str) -> pd.DataFrame:
    """Every logged row of ``kind`` for ``model``, oldest first: columns ``t``, ``version``, ``unit`` (and ``arm``)
    plus one column per feature or answer field. A line cut short by a killed process is skipped."""
    value_key = "x" if kind == "features" else "y"
    records = []
    folder = served_dir(settings, model)
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("kind") == kind:
                    records.append({"t": row["t"], "version": row.get("version"), "unit": row.get("unit"),
                                    "arm": row.get("arm"), **(row.get(value_key) or {})})
    if not records:
        return pd.DataFrame(columns=["t", "version", "unit", "arm"])
    return pd.DataFrame.from_records(records).sort_values("t", kind="stable").reset_index(drop=True)
