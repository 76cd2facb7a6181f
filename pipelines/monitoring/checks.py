"""The checks of one champion: data drift (newest batch, served features), prediction drift, live performance.

Each check gives a :class:`Check` with a status (``ok``, ``breach``, ``skipped`` with the reason, or ``error``) and
a one-line reason; :mod:`pipelines.monitoring.monitor` runs them for every family and records the result.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from pipelines.monitoring.stats import Drift, frame_drift
from pipelines.settings import MonitorSettings

log = logging.getLogger(__name__)

OK, BREACH, SKIPPED, ERROR = "ok", "breach", "skipped", "error"


@dataclass
class Check:
    name: str
    status: str
    reason: str
    drift: list[Drift] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"drift": [d.to_dict() for d in self.drift]}


def _thresholds(m: MonitorSettings) -> dict[str, Any]:
    return {"bins": m.bins, "max_psi": m.max_psi, "alpha": m.alpha, "max_categories": m.max_categories,
            "min_rows": m.min_rows}


def drift_check(name: str, reference: pd.DataFrame | None, current: pd.DataFrame | None, m: MonitorSettings,
                what: str) -> Check:
    """Per-column drift of ``current`` against ``reference``; a breach when more than ``m.max_drifted_share`` of
    the compared columns drift."""
    if reference is None or reference.empty:
        return Check(name, SKIPPED, f"no reference for {what}")
    if current is None or len(current) < m.min_rows:
        return Check(name, SKIPPED, f"{0 if current is None else len(current)} rows of {what}; "
                                    f"at least {m.min_rows} needed (monitor.min_rows)")
    drift = frame_drift(reference, current, **_thresholds(m))
    if not drift:
        return Check(name, SKIPPED, f"no column of {what} has {m.min_rows} values on both sides")
    drifted = sorted((d for d in drift if d.drifted), key=lambda d: -d.psi)
    values = {"compared": len(drift), "drifted": len(drifted), "max_psi": max(d.psi for d in drift),
              "rows_reference": len(reference), "rows_current": len(current)}
    if len(drifted) / len(drift) > m.max_drifted_share:
        named = ", ".join(f"{d.column} PSI {d.psi:.2f} p={d.p_value:.1e}" for d in drifted[:3])
        more = f" and {len(drifted) - 3} more" if len(drifted) > 3 else ""
        return Check(name, BREACH, f"{what}: {len(drifted)}/{len(drift)} column(s) drifted ({named}{more})",
                     drift, values)
    return Check(name, OK, f"{what}: no drift in {len(drift)} column(s) (max PSI {values['max_psi']:.3f})",
                 drift, values)


def prediction_check(predictions: pd.DataFrame, version: str, m: MonitorSettings) -> Check:
    """The champion's oldest served predictions against its newest (windows of ``m.prediction_window``)."""
    name = "prediction drift (served)"
    mine = predictions[predictions["version"].astype(str) == str(version)] if len(predictions) else predictions
    fields = [c for c in mine.columns if c not in ("t", "version", "unit", "arm")]
    n = len(mine)
    if n < 2 * m.min_rows or not fields:
        return Check(name, SKIPPED, f"{n} served prediction(s) of v{version} logged; at least {2 * m.min_rows} "
                                    "needed")
    window = min(m.prediction_window, n // 2)
    check = drift_check(name, mine[fields].iloc[:window], mine[fields].iloc[-window:], m,
                        f"served predictions of v{version} (first {window} vs last {window})")
    return check


def performance_check(live: float | None, offline: float | None, metric: str, higher_is_better: bool,
                      units: int | None, scope: str, m: MonitorSettings) -> Check:
    """Live value of the primary metric against the offline holdout value of the same version (``units``: how many
    units with outcomes it was computed on, ``None`` when the family's ``score`` does not say)."""
    name = "live performance"
    if live is None or offline is None:
        return Check(name, SKIPPED, "no live or offline value")
    if units is not None and units < m.min_live_units:
        return Check(name, SKIPPED, f"{units} unit(s) with outcomes; at least {m.min_live_units} needed")
    allowed = m.max_performance_drop * abs(offline)
    worse = offline - live if higher_is_better else live - offline
    values = {"metric": metric, "live": live, "offline": offline, "units": units, "scope": scope,
              "allowed_drop": allowed}
    text = f"{metric} live {live:.4f} vs offline {offline:.4f} on {'' if units is None else f'{units} '}{scope}"
    if worse > allowed:
        return Check(name, BREACH, f"{text}: worse by {worse:.4f} (> {allowed:.4f} allowed)", values=values)
    return Check(name, OK, text, values=values)
