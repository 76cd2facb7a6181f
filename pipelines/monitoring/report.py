"""The HTML page of one monitoring run (self-contained: no scripts, no external assets)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}th{background:#f3f3f3}
.ok{color:#17693a}.breach,.error{color:#b00020;font-weight:bold}.skipped{color:#777}.drifted{background:#fde8ea}"""


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return escape(str(x))


def _drift_table(drift: list[dict]) -> str:
    if not drift:
        return ""
    rows = "".join(
        f"<tr class='{'drifted' if d['drifted'] else ''}'><td>{escape(d['column'])}</td><td>{d['kind']}</td>"
        f"<td>{_num(d['psi'])}</td><td>{d['test']}</td><td>{_num(d['statistic'])}</td><td>{_num(d['p_value'])}</td>"
        f"<td>{_num(d['reference_mean'])}</td><td>{_num(d['current_mean'])}</td>"
        f"<td>{d['n_reference']}/{d['n_current']}</td><td>{'yes' if d['drifted'] else ''}</td></tr>"
        for d in sorted(drift, key=lambda d: -d["psi"]))
    return ("<table><tr><th>column</th><th>kind</th><th>PSI</th><th>test</th><th>statistic</th><th>p-value</th>"
            "<th>mean (ref)</th><th>mean (now)</th><th>rows ref/now</th><th>drifted</th></tr>" + rows + "</table>")


def render(result: dict[str, Any], thresholds: dict[str, Any]) -> str:
    """The page: one section per model, one row per check, each drift check's per-column table."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>ShopFlow monitoring {escape(result['run_id'])}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>ShopFlow monitoring</h1><p>run <code>{escape(result['run_id'])}</code>, started "
             f"{escape(result['started'])}, {result['seconds']} s.</p>"]
    verdict = (f"<p class='breach'>Breach: {escape(result['reason'])}</p>" if result["breaches"]
               else "<p class='ok'>No breach.</p>")
    parts.append(verdict)
    parts.append("<p>Thresholds: " + ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in thresholds.items())
                 + "</p>")
    for model in result["models"]:
        parts.append(f"<h2 id='{escape(model['model'])}'>{escape(model['model'])} "
                     f"<small>champion v{escape(str(model['version']))}</small> "
                     f"<span class='{model['status']}'>{model['status']}</span></h2>")
        if not model["checks"]:
            parts.append(f"<p class='skipped'>{escape(model['reason'])}</p>")
        parts.append("<table><tr><th>check</th><th>status</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{escape(c['name'])}</td><td class='{c['status']}'>{c['status']}</td>"
            f"<td>{escape(c['reason'])}</td></tr>" for c in model["checks"]) + "</table>")
        for c in model["checks"]:
            if c["drift"]:
                parts.append(f"<h3>{escape(c['name'])}</h3>{_drift_table(c['drift'])}")
    parts.append("</body></html>")
    return "\n".join(parts)
