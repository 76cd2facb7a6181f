"""Great Expectations suites for the raw tables, generated from :mod:`pipelines.data.schema`.

Every rule that the schema states (columns, nullability, bounds, allowed values, keys, foreign keys, time
columns) becomes one expectation; nothing is written out per table by hand except a few sanity bounds on
distributions that no schema field expresses (:data:`SANITY_CHECKS`) and cross-column rules
(:data:`CONSISTENCY_CHECKS`, on columns the gate derives while staging, :data:`DERIVED_COLUMNS`). Comparisons with
the last accepted batch come from :mod:`pipelines.validation.compare`.

Values that change from batch to batch are *suite parameters* (``{"$PARAMETER": name}``) supplied at run time
by :func:`expectation_parameters`, so the stored suites stay identical across runs:

* ``fk__<table>__<column>``: the key set of a referenced table (referential integrity);
* ``fresh_after__<table>`` / ``not_after``: the freshness window derived from ``as_of``, the table's own period
  (``daily_sales`` may be weekly, monthly or quarterly) and whether the batch is judged as historical data;
* ``cmp__<table>__...``: bounds derived from the previous accepted batch (:func:`compare.parameters`).

Every table is optional (a batch holds the tables of the data kinds it brings): suites are built for the tables
present, and a foreign key is checked only when the referenced table is present too.

Every expectation carries ``meta`` (``table``, ``check``: a short machine-readable kind) and ``notes`` (why the
rule exists), which the gate's summary and the Data Docs show next to each failure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

from pipelines.data.schema import ALL_TABLES, EVENT_TYPES, ForeignKey, TableSchema
from pipelines.settings import ValidationSettings

SUITE_PREFIX = "raw_"
"""Suite (and validation definition) names are ``raw_<table>``."""

FRESHNESS_TABLES = tuple(name for name, t in ALL_TABLES.items() if t.fresh)
"""Tables whose newest row must be recent. Customers' signups may legitimately be old."""

PERIODS_OF_STALENESS = 1.5
"""A periodic table (``daily_sales``) may be this many of its own periods old when that exceeds the day bound:
a weekly series dated at the week's start is 7-13 days old before the next week's row can exist."""

FUTURE_TOLERANCE = dt.timedelta(days=1)
"""Rows may be this far ahead of ``as_of`` (clock skew); anything later is a time-zone or clock bug."""

# Sanity bounds a plausible shop satisfies; deliberately wide so they only catch broken units or generators.
ORDER_AMOUNT_MEAN = (1.0, 10_000.0)
MAX_MEAN_QUANTITY = 20.0
PURCHASE_SHARE = (0.001, 0.5)

FRESH_AFTER = "fresh_after"
NOT_AFTER = "not_after"


def suite_name(table: str) -> str:
    """Name of the suite (and of its validation definition) for ``table``."""
    return f"{SUITE_PREFIX}{table}"


def fk_parameter(fk: ForeignKey) -> str:
    """Suite-parameter name holding the key set that ``fk`` must reference."""
    return f"fk__{fk.table}__{fk.ref_column}"


def fresh_parameter(table: str) -> str:
    """Suite-parameter name holding the oldest acceptable newest timestamp of ``table``."""
    return f"{FRESH_AFTER}__{table}"


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _meta(table: str, check: str, rule: str, **extra: object) -> dict[str, object]:
    """``rule`` is the plain-English statement the gate's summary prints for a failure."""
    return {"table": table, "check": check, "rule": rule, **extra}


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def _sanity_orders() -> list[gxe.Expectation]:
    lo, hi = ORDER_AMOUNT_MEAN
    return [
        gxe.ExpectColumnMeanToBeBetween(
            column="amount",
            min_value=lo,
            max_value=hi,
            meta=_meta("orders", "distribution", f"mean amount {_bounds(lo, hi)}"),
            notes=f"Mean order-line amount outside [{lo:g}, {hi:g}] means broken prices or currency units.",
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="quantity",
            max_value=MAX_MEAN_QUANTITY,
            meta=_meta("orders", "distribution", f"mean quantity {_bounds(None, MAX_MEAN_QUANTITY)}"),
            notes=f"A retail shop sells a few units per line; a mean above {MAX_MEAN_QUANTITY:g} means bulk/test data.",
        ),
    ]


def _sanity_events() -> list[gxe.Expectation]:
    lo, hi = PURCHASE_SHARE
    others = [t for t in EVENT_TYPES if t != "purchase"]
    # GX has no "share of a value" expectation; `mostly` on an in-set check expresses exactly that bound.
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column="event_type",
            value_set=["purchase"],
            mostly=lo,
            description=f"At least {lo:.1%} of events are purchases",
            meta=_meta("events", "distribution", f"at least {lo:.1%} of events are purchases"),
            notes="Almost no purchases means the purchase tracking (or the event export) is broken.",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="event_type",
            value_set=others,
            mostly=1.0 - hi,
            description=f"At most {hi:.0%} of events are purchases",
            meta=_meta("events", "distribution", f"at most {hi:.0%} of events are purchases"),
            notes="Views and carts must dominate the funnel; mostly purchases means views are missing.",
        ),
    ]


SANITY_CHECKS: dict[str, Callable[[], list[gxe.Expectation]]] = {
    "orders": _sanity_orders,
    "events": _sanity_events,
}
"""Distribution bounds per table that the schema cannot state."""

DERIVED_COLUMNS: dict[str, dict[str, Callable[[pd.DataFrame], pd.Series]]] = {
    "orders": {"amount_error_per_unit": lambda d: (d["amount"] - d["quantity"] * d["unit_price"]) / d["quantity"]},
}
"""Columns the gate adds to a staged table so that Great Expectations can check a rule across columns (no built-in
expectation multiplies two columns). They exist only in the staged copy, never in a stored batch."""


def with_derived(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the table's :data:`DERIVED_COLUMNS` (as float64), for staging."""
    extra = {name: pd.to_numeric(fn(df), errors="coerce").astype("float64")
             for name, fn in DERIVED_COLUMNS.get(table, {}).items()}
    return df.assign(**extra) if extra else df


def _consistency_orders(validation: ValidationSettings) -> list[gxe.Expectation]:
    tol = validation.amount_tolerance
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="amount_error_per_unit",
            min_value=-tol,
            max_value=tol,
            meta=_meta("orders", "consistency", f"amount = quantity * unit_price (to {tol:g} per unit; values quoted "
                                                "are (amount - quantity * unit_price) / quantity)", column="amount"),
            notes="An order line's amount is its quantity times its unit price; anything else is a broken export "
                  "(a total in the wrong column, a currency mix-up) and corrupts every revenue feature.",
        ),
    ]


CONSISTENCY_CHECKS: dict[str, Callable[[ValidationSettings], list[gxe.Expectation]]] = {
    "orders": _consistency_orders,
}
"""Rules across columns of one table (checked on :data:`DERIVED_COLUMNS`)."""


def build_expectations(schema: TableSchema, validation: ValidationSettings,
                       present: Iterable[str] | None = None,
                       baseline: Mapping[str, object] | None = None) -> list[gxe.Expectation]:
    """All expectations for one raw table, derived from its schema (and the previous batch's profile).

    Args:
        schema: The table contract.
        validation: Thresholds (``min_rows``; staleness enters through suite parameters).
        present: Tables of the batch; foreign keys into other tables are checked only for these (default: all).
        baseline: This table's profile in the last accepted batch (:func:`compare.profile`); ``None``: no comparison.

    Returns:
        Expectations in a stable order (table level, columns, keys, foreign keys, time, sanity, consistency,
        comparison).
    """
    from pipelines.validation import compare

    t = schema.name
    min_rows = schema.min_rows if schema.min_rows is not None else validation.min_rows
    out: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*schema.column_names, *DERIVED_COLUMNS.get(t, {})],
            # A table taking attributes may hold further (typed) columns; the schema's must all be there.
            exact_match=not schema.attributes,
            meta=_meta(t, "columns", "the schema's columns, plus attribute columns" if schema.attributes
                       else "exactly the schema's columns"),
            notes="Downstream feature code relies on the contract's columns.",
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=min_rows,
            meta=_meta(t, "row_count", f"at least {min_rows} row{'s' if min_rows > 1 else ''}"),
            notes=f"Fewer than {min_rows} rows means a truncated or failed export." if min_rows > 1
            else "An empty table means a truncated or failed export.",
        ),
    ]
    for col in schema.columns:
        if not col.nullable:
            out.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=col.name,
                    meta=_meta(t, "not_null", "no missing values"),
                    notes=f"{t}.{col.name} is required by the schema. {col.description}".strip(),
                )
            )
        if col.min_value is not None or col.max_value is not None:
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=col.name,
                    min_value=col.min_value,
                    max_value=col.max_value,
                    meta=_meta(t, "range", f"values {_bounds(col.min_value, col.max_value)}"),
                    notes=f"Schema bounds of {t}.{col.name}. {col.description}".strip(),
                )
            )
        if col.allowed is not None:
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=col.name,
                    value_set=list(col.allowed),
                    meta=_meta(t, "allowed_values", f"values in {{{', '.join(col.allowed)}}}"),
                    notes=f"{t}.{col.name} must be one of {', '.join(col.allowed)}.",
                )
            )
        if col.pattern is not None:
            out.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=col.name,
                    regex=col.pattern,
                    meta=_meta(t, "format", col.pattern_rule or f"values match {col.pattern}"),
                    notes=f"{t}.{col.name} must be {col.pattern_rule or 'well-formed'}.",
                )
            )
    pk = list(schema.primary_key)
    if len(pk) == 1:
        out.append(
            gxe.ExpectColumnValuesToBeUnique(
                column=pk[0],
                meta=_meta(t, "primary_key", "unique values (primary key)"),
                notes=f"{pk[0]} is the primary key of {t}.",
            )
        )
    else:
        out.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=pk,
                meta=_meta(t, "primary_key", f"unique ({', '.join(pk)}) combinations (primary key)"),
                notes=f"({', '.join(pk)}) is the primary key of {t}.",
            )
        )
    present = set(ALL_TABLES if present is None else present)
    for fk in (fk for fk in schema.foreign_keys if fk.table in present):
        # The parent's key set is a suite parameter: pandas evaluates it as one hashed `isin`, which stays
        # fast for thousands of ids, and the stored suite does not change with every batch.
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=fk.column,
                value_set=_param(fk_parameter(fk)),
                mostly=1.0,
                description=f"Every {t}.{fk.column} exists in {fk.table}.{fk.ref_column}",
                meta=_meta(
                    t,
                    "foreign_key",
                    f"every value exists in {fk.table}.{fk.ref_column}",
                    references=f"{fk.table}.{fk.ref_column}",
                ),
                notes=f"Referential integrity: {t}.{fk.column} references {fk.table}.{fk.ref_column}.",
            )
        )
    if schema.time_column:
        tc = schema.time_column
        if t in FRESHNESS_TABLES:
            bound = f"at most {validation.max_staleness_days:g} days old"
            if t == "daily_sales":
                bound += f" (or {PERIODS_OF_STALENESS:g} periods of its inferred frequency, if longer)"
            out.append(
                gxe.ExpectColumnMaxToBeBetween(
                    column=tc,
                    min_value=_param(fresh_parameter(t)),
                    description=f"Newest {t}.{tc} is {bound}",
                    meta=_meta(
                        t,
                        "freshness",
                        f"newest value {bound}",
                        max_staleness_days=validation.max_staleness_days,
                    ),
                    notes="A stale batch would train and serve on outdated behaviour. Old, historical data: "
                          "import it with --historical (see docs/data-schema.md, Freshness).",
                )
            )
        out.append(
            gxe.ExpectColumnMaxToBeBetween(
                column=tc,
                max_value=_param(NOT_AFTER),
                description=f"No {t}.{tc} lies in the future",
                meta=_meta(t, "not_in_future", "no value in the future"),
                notes="Timestamps after the validation time point to a clock or time-zone bug.",
            )
        )
    if t in SANITY_CHECKS:
        out.extend(SANITY_CHECKS[t]())
    if t in CONSISTENCY_CHECKS:
        out.extend(CONSISTENCY_CHECKS[t](validation))
    out.extend(compare.expectations(schema, baseline, validation))
    return out


def build_suite(schema: TableSchema, validation: ValidationSettings,
                present: Iterable[str] | None = None,
                baseline: Mapping[str, object] | None = None) -> gx.ExpectationSuite:
    """The expectation suite of one table (not yet saved to any Data Context)."""
    return gx.ExpectationSuite(
        name=suite_name(schema.name),
        expectations=build_expectations(schema, validation, present, baseline),
        meta={"table": schema.name, "notes": schema.description, "generated_from": "pipelines.data.schema"},
    )


def build_suites(validation: ValidationSettings, tables: Iterable[str] | None = None,
                 baseline: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, gx.ExpectationSuite]:
    """One suite per raw table present (default: every table), keyed by name, in the schema's dependency order.

    ``baseline`` is the last accepted batch's profile (table -> profile); tables it holds get comparison checks.
    """
    present = list(ALL_TABLES) if tables is None else [name for name in ALL_TABLES if name in set(tables)]
    baseline = baseline or {}
    return {name: build_suite(ALL_TABLES[name], validation, present, baseline.get(name)) for name in present}


def _newest(tables: Mapping[str, pd.DataFrame], names: Iterable[str]) -> pd.Timestamp | None:
    stamps = [pd.to_datetime(tables[n][ALL_TABLES[n].time_column], utc=True).max() for n in names if n in tables]
    stamps = [s for s in stamps if pd.notna(s)]
    return max(stamps) if stamps else None


def freshness_windows(
    tables: Mapping[str, pd.DataFrame], validation: ValidationSettings, as_of: dt.datetime, historical: bool = False
) -> tuple[dict[str, pd.Timestamp], list[str]]:
    """Oldest acceptable newest timestamp per freshness table, and notes for the report.

    Staleness is ``max_staleness_days``, or 1.5 periods of ``daily_sales``' inferred frequency when that is longer.
    A historical batch is judged as of its own newest timestamp (over every freshness table, never later than
    ``as_of``) instead of ``as_of``, so old data can pass while each table must still reach the batch's end.

    Args:
        tables: The batch's tables.
        validation: Thresholds.
        as_of: The time the batch is judged at (UTC assumed if naive).
        historical: Judge as of the batch's own end.
    """
    from pipelines.data.frequency import FREQUENCIES, sales_frequency

    ref = judged_at(tables, as_of, historical)
    notes: list[str] = []
    if historical:
        # The time itself is the report's one "judged as of" (see judged_at); the note only says why.
        notes.append("historical batch: judged as of its own newest timestamp instead of now")
    windows: dict[str, pd.Timestamp] = {}
    for name in FRESHNESS_TABLES:
        days = float(validation.max_staleness_days)
        if name == "daily_sales" and name in tables:
            freq = sales_frequency(tables[name])
            if freq is not None and freq != "daily":
                days = max(days, PERIODS_OF_STALENESS * FREQUENCIES[freq].days)
                notes.append(f"daily_sales is {freq}: its newest period may be up to {days:g} days old")
        windows[name] = ref - pd.Timedelta(days=days)
    return windows, notes


def judged_at(tables: Mapping[str, pd.DataFrame], as_of: dt.datetime, historical: bool = False) -> pd.Timestamp:
    """The one time a batch is judged at: ``as_of``, or for a historical batch its newest timestamp (over every
    freshness table, never later than ``as_of``)."""
    ref = _utc(as_of)
    if historical:
        newest = _newest(tables, FRESHNESS_TABLES)
        if newest is not None and newest < ref:
            ref = newest
    return ref


def _utc(ts: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def expectation_parameters(
    tables: Mapping[str, pd.DataFrame], validation: ValidationSettings, as_of: dt.datetime, historical: bool = False,
    baseline: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, object]:
    """Run-time values for the suites' parameters.

    Args:
        tables: The batch's tables (as read by :func:`pipelines.data.io.read_batch`); only these are validated.
        validation: Thresholds (``max_staleness_days``, the comparison ratios).
        as_of: Time the batch is judged at (timezone-aware, UTC assumed if naive).
        historical: Judge freshness as of the batch's own newest timestamp (see :func:`freshness_windows`).
        baseline: The last accepted batch's profile, for the comparison bounds.

    Returns:
        Parameter name -> value, to pass as ``expectation_parameters`` to a Checkpoint run.
    """
    ts = _utc(as_of)
    windows, _ = freshness_windows(tables, validation, as_of, historical)
    params: dict[str, object] = {
        FRESH_AFTER: (ts - pd.Timedelta(days=validation.max_staleness_days)).to_pydatetime(),
        NOT_AFTER: (ts + FUTURE_TOLERANCE).to_pydatetime(),
        **{fresh_parameter(name): w.floor("us").to_pydatetime() for name, w in windows.items()},
    }
    for name, schema in ALL_TABLES.items():
        if name not in tables:
            continue
        for fk in schema.foreign_keys:
            param = fk_parameter(fk)
            if fk.table in tables and param not in params:
                params[param] = tables[fk.table][fk.ref_column].dropna().unique().tolist()
    if baseline:
        from pipelines.validation import compare

        params.update(compare.parameters(baseline, validation))
    return params
