"""The gate's comparison of a batch with the last accepted one: expectations, their bounds and what moved.

A batch can satisfy every rule of the schema and still be wrong: prices in cents instead of units (x100), a category
that silently dropped out of the export, one order line of a million, half the rows missing. Each is visible only
next to the batch before it. So every accepted batch stores a *profile* (row counts; per numeric column count,
median, mean, 99.9th percentile and maximum; per categorical column its value counts) in its ``report.json``, and the
next batch is validated, in the same Great Expectations checkpoint, against bounds derived from that profile:

* ``row_count_change``: each table's row count within ``max_row_count_ratio`` of the previous one;
* ``shift``: each numeric column's median and mean within ``max_shift_ratio`` of the previous ones;
* ``tail``: each numeric column's maximum at most ``max_tail_ratio`` times the previous 99.9th percentile;
* ``vanished``: every value of a categorical column (``Column.categorical``) is still there;
* ``new_values``: at most ``max_new_category_share`` of the rows hold values the previous batch did not have (up to
  that share the report warns).

The previous batch is the last accepted one: ``PENDING`` (accepted, features not switched in yet), else ``CURRENT``.
Only tables both batches hold are compared, and only tables (columns) with at least ``min_compare_rows`` rows
(values) in the previous batch. The first batch has nothing to compare with; the report says so.

The bounds are suite parameters (``{"$PARAMETER": ...}``) computed here, so the stored suites do not change with
every batch. After the run, :func:`items` turns the results into "what moved" lines (previous value, new value,
ratio, bound) for the report.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines import objectstore
from pipelines.data.schema import ALL_TABLES, TableSchema

if TYPE_CHECKING:
    import great_expectations.expectations as gxe

    from pipelines.settings import Settings, ValidationSettings

log = logging.getLogger(__name__)

CHECKS = ("row_count_change", "shift", "tail", "vanished", "new_values")
"""``meta.check`` of the comparison expectations."""

QUANTILE = 0.999
MAX_CATEGORIES = 1000
"""Value counts kept per categorical column in a profile (closed vocabularies are far smaller)."""
REPORT_MOVE = 0.10
"""The report lists every compared statistic that moved by more than this (and every failure)."""


def numeric_columns(schema: TableSchema) -> list[str]:
    return [c.name for c in schema.columns if c.kind in ("int", "float")]


def categorical_columns(schema: TableSchema) -> list[str]:
    return [c.name for c in schema.columns if c.categorical]


# ---------------------------------------------------------------------------------------------------- profiles


def profile(tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The statistics the next batch is compared with, per table (JSON-ready)."""
    out: dict[str, Any] = {}
    for name, df in tables.items():
        if name not in ALL_TABLES:
            continue
        schema = ALL_TABLES[name]
        numeric = {}
        for col in numeric_columns(schema):
            if col not in df:
                continue
            values = pd.to_numeric(df[col], errors="coerce").dropna().astype("float64")
            if values.empty:
                continue
            numeric[col] = {"n": int(len(values)), "median": float(values.median()), "mean": float(values.mean()),
                            "p999": float(values.quantile(QUANTILE)), "max": float(values.max())}
        categorical = {}
        for col in categorical_columns(schema):
            if col in df:
                counts = df[col].dropna().astype(str).value_counts().head(MAX_CATEGORIES)
                categorical[col] = {str(k): int(v) for k, v in counts.items()}
        out[name] = {"rows": int(len(df)), "numeric": numeric, "categorical": categorical}
    return out


def baseline(settings: Settings, batch_id: str) -> tuple[str, dict[str, Any]] | None:
    """The last accepted batch other than ``batch_id`` (``PENDING``, else ``CURRENT``) and its profile."""
    from pipelines.data.current import read_current, read_pending

    current = read_current(settings)
    for candidate in (read_pending(settings), current.batch_id if current else None):
        if candidate is None or candidate == batch_id or not objectstore.pull_dir(settings,
                                                                                  settings.batches_dir / candidate):
            continue
        return candidate, load_profile(settings, candidate)
    return None


def load_profile(settings: Settings, batch_id: str) -> dict[str, Any]:
    """The stored profile of an accepted batch; computed from its tables if it was accepted before profiles."""
    from pipelines.data.io import read_batch

    report = settings.batches_dir / batch_id / "report.json"
    if report.exists():
        stored = json.loads(report.read_text()).get("profile")
        if stored:
            return stored
    log.info("Batch %s has no stored profile; computing it from its tables", batch_id)
    return profile(read_batch(settings.batches_dir / batch_id))


# ---------------------------------------------------------------------------------------------------- suites


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _name(table: str, column: str | None, what: str) -> str:
    return f"cmp__{table}__{column}__{what}" if column else f"cmp__{table}__{what}"


def _meta(table: str, check: str, rule: str, column: str | None = None, stat: str | None = None) -> dict[str, Any]:
    return {"table": table, "check": check, "rule": rule, "compare": {"column": column, "stat": stat}}


def _compared(base: Mapping[str, Any] | None, validation: ValidationSettings) -> bool:
    return bool(base) and base.get("rows", 0) >= validation.min_compare_rows


def expectations(schema: TableSchema, base: Mapping[str, Any] | None,
                 validation: ValidationSettings) -> list[gxe.Expectation]:
    """Comparison expectations of one table against its profile in the previous batch (``None``: none)."""
    import great_expectations.expectations as gxe

    if not _compared(base, validation):
        return []
    t = schema.name
    r = validation.max_shift_ratio
    out: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=_param(_name(t, None, "rows_min")),
            max_value=_param(_name(t, None, "rows_max")),
            meta=_meta(t, "row_count_change", f"row count within x{validation.max_row_count_ratio:g} of the previous "
                                              "batch's", stat="rows"),
            notes="A jump in rows means a truncated, duplicated or wrong export.",
        )
    ]
    for col in numeric_columns(schema):
        stats = base["numeric"].get(col)
        if not stats or stats["n"] < validation.min_compare_rows:
            continue
        for stat, cls in (("median", gxe.ExpectColumnMedianToBeBetween), ("mean", gxe.ExpectColumnMeanToBeBetween)):
            if stats[stat] > 0:
                out.append(cls(
                    column=col,
                    min_value=_param(_name(t, col, f"{stat}_min")),
                    max_value=_param(_name(t, col, f"{stat}_max")),
                    meta=_meta(t, "shift", f"{stat} within x{r:g} of the previous batch's", col, stat),
                    notes="A shift this large means a changed unit or currency, or a broken export.",
                ))
        if stats["p999"] > 0:
            out.append(gxe.ExpectColumnMaxToBeBetween(
                column=col,
                max_value=_param(_name(t, col, "max_max")),
                meta=_meta(t, "tail", f"maximum at most {validation.max_tail_ratio:g} times the previous batch's "
                                      f"{QUANTILE:.1%} quantile", col, "max"),
                notes="A single extreme value (a typo, a test order) distorts every sum and mean built on it.",
            ))
    for col in categorical_columns(schema):
        counts = base["categorical"].get(col)
        if not counts or sum(counts.values()) < validation.min_compare_rows:
            continue
        share = validation.max_new_category_share
        out += [
            gxe.ExpectColumnDistinctValuesToContainSet(
                column=col,
                value_set=_param(_name(t, col, "values")),
                meta=_meta(t, "vanished", "every value of the previous batch still present", col, "values"),
                notes="A vanished category means a filtered or broken export; models would silently lose it.",
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column=col,
                value_set=_param(_name(t, col, "values")),
                mostly=1.0 - share,
                meta=_meta(t, "new_values", f"at most {share:.0%} of rows with values the previous batch did not "
                                            "have", col, "new"),
                notes="Many rows with unseen labels means renamed categories or another shop's data.",
            ),
        ]
    return out


def parameters(base_profile: Mapping[str, Any], validation: ValidationSettings) -> dict[str, Any]:
    """Suite-parameter values of the comparison expectations (bounds derived from the previous profile)."""
    params: dict[str, Any] = {}
    rr, r, tr = validation.max_row_count_ratio, validation.max_shift_ratio, validation.max_tail_ratio
    for t, base in base_profile.items():
        if t not in ALL_TABLES:
            continue
        rows = base.get("rows", 0)
        params[_name(t, None, "rows_min")] = math.floor(rows / rr)
        params[_name(t, None, "rows_max")] = math.ceil(rows * rr)
        for col, stats in base.get("numeric", {}).items():
            for stat in ("median", "mean"):
                params[_name(t, col, f"{stat}_min")] = stats[stat] / r
                params[_name(t, col, f"{stat}_max")] = stats[stat] * r
            params[_name(t, col, "max_max")] = stats["p999"] * tr
        for col, counts in base.get("categorical", {}).items():
            params[_name(t, col, "values")] = sorted(counts)
    return params


# ---------------------------------------------------------------------------------------------------- report


def _num(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    return f"{x:,.4g}" if isinstance(x, float) else str(x)


def item(table: str, meta: Mapping[str, Any], result: Mapping[str, Any], success: bool, base_table: Mapping[str, Any],
         validation: ValidationSettings) -> dict[str, Any]:
    """One "what moved" entry from a comparison expectation's result: previous, new, bound, verdict, message."""
    check = meta["check"]
    column = meta.get("compare", {}).get("column")
    stat = meta.get("compare", {}).get("stat")
    where = f"{table}.{column}" if column else table
    observed = result.get("observed_value")
    out: dict[str, Any] = {"table": table, "column": column, "check": check, "stat": stat, "ok": bool(success)}
    if check in ("row_count_change", "shift", "tail"):
        if check == "row_count_change":
            previous, ratio_bound, label = base_table["rows"], validation.max_row_count_ratio, "rows"
        elif check == "shift":
            previous, ratio_bound, label = base_table["numeric"][column][stat], validation.max_shift_ratio, stat
        else:
            previous, ratio_bound, label = base_table["numeric"][column]["max"], None, "maximum"
        new = float(observed) if isinstance(observed, numbers.Real) else None
        ratio = new / previous if new is not None and previous else None
        out.update(previous=previous, new=new, ratio=ratio)
        moved = f"{label} {_num(previous)} -> {_num(new)}" + (f" (x{ratio:.3g})" if ratio is not None else "")
        if check == "tail":
            p999 = base_table["numeric"][column]["p999"]
            out["allowed"] = f"at most {_num(p999 * validation.max_tail_ratio)} ({validation.max_tail_ratio:g} x " \
                             f"the previous {QUANTILE:.1%} quantile {_num(p999)})"
        else:
            out["allowed"] = f"x{1 / ratio_bound:.3g} to x{ratio_bound:g}"
        out["message"] = f"{where}: {moved}; allowed {out['allowed']}."
    elif check == "vanished":
        previous_counts = base_table["categorical"][column]
        # GX reports what is missing (``partial_missing_list``), not the values it found.
        missing = sorted({str(v) for v in result.get("partial_missing_list") or []})
        total = sum(previous_counts.values()) or 1
        share = sum(previous_counts.get(v, 0) for v in missing) / total
        out.update(previous=sorted(previous_counts), missing=missing, missing_share=share)
        out["message"] = (f"{where}: value(s) {missing} of the previous batch vanished (they held {share:.1%} of its "
                          "rows)." if missing else f"{where}: every value of the previous batch is present.")
    else:  # new_values
        unexpected = sorted({str(v) for v in result.get("partial_unexpected_list") or []})
        pct = float(result.get("unexpected_percent") or 0.0)
        out.update(new=unexpected, share=pct / 100, allowed=f"at most {validation.max_new_category_share:.0%}")
        out["message"] = (f"{where}: {pct:.1f}% of rows hold values the previous batch did not have, e.g. "
                          f"{unexpected[:5]}; allowed {out['allowed']}." if unexpected
                          else f"{where}: no new values.")
    return out


def moved(entry: Mapping[str, Any]) -> bool:
    """Whether a "what moved" entry is worth a line in the summary (failed, or moved by over 10 %, or new labels)."""
    if not entry.get("ok"):
        return True
    if entry["check"] in ("vanished",):
        return bool(entry.get("missing"))
    if entry["check"] == "new_values":
        return bool(entry.get("new"))
    ratio = entry.get("ratio")
    if ratio is None or ratio <= 0:
        return False
    if entry["check"] == "tail":  # a smaller maximum is no news
        return ratio > 1 + REPORT_MOVE
    return abs(math.log(ratio)) > math.log1p(REPORT_MOVE)
