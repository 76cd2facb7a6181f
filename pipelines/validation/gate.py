"""The data-quality gate between a landed raw batch and everything built from it.

``gate(batch_id, settings)`` validates ``landing_dir/<batch_id>`` against the suites of
:mod:`pipelines.validation.suites` in one Great Expectations Checkpoint, including the comparison with the last
accepted batch (:mod:`pipelines.validation.compare`), then either accepts the batch (moves it to ``batches_dir``
and marks it ``PENDING``) or quarantines it with a readable ``summary.md`` and raises :class:`DataValidationError`.
Only the tables present are validated (every table is optional); the report also says which model families the
batch can train and what moved since the previous batch.

Accepting is not making current: ``CURRENT`` moves only when the batch's feature snapshot is built and materialised
(:mod:`pipelines.publish`, the data DAG's last task, or ``shopflow data use``). Validating a batch that was accepted
before returns its stored report and moves nothing (``report.already_accepted``).

Freshness is judged at ``as_of`` (default now), or, for a *historical* batch, at the batch's own newest timestamp:
historical is set per call (``historical=True``, ``shopflow validate --historical``), per batch (its
``manifest.json``, written by ``shopflow data import --historical``) or for every batch
(``SHOPFLOW_VALIDATION__HISTORICAL=true``).

Layout written here (all under ``settings.home``)::

    gx/                                   GX file context: suites, checkpoint, results, Data Docs
    gx/staging/<table>.parquet            the batch being validated, with the schema's dtypes
    reports/validation/<batch_id>/        summary.md + report.json of every validation
    data/batches/<batch_id>/              accepted batch: its tables + report.json with its profile (reruns return it)
    data/PENDING                          newest accepted batch not yet current (see pipelines/data/current.py)
    quarantine/<batch_id>/                rejected batch + summary.md + report.json

Great Expectations is imported lazily: DAG files import this module and must parse quickly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from pipelines import objectstore
from pipelines.data import current as pointers
from pipelines.data.io import BatchFormatError, read_batch
from pipelines.data.kinds import family_support, read_manifest
from pipelines.data.schema import ALL_TABLES
from pipelines.errors import UserError
from pipelines.faults import fault_point
from pipelines.paths import atomic_write, check_batch_id, confined, file_lock, move_tree, remove_tree
from pipelines.validation import compare

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

    from pipelines.settings import Settings

log = logging.getLogger(__name__)

DATASOURCE = "shopflow_raw"
CHECKPOINT = "raw_batch_gate"
DOCS_SITE = "local_site"
STAGING = "staging"
FINGERPRINT_FILE = "shopflow_suites.sha256"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
MAX_EXAMPLES = 5
"""Unexpected values quoted per failure (GX's SUMMARY format keeps 20)."""


class DataValidationError(UserError, RuntimeError):
    """A batch failed the gate. ``str(err)`` is the readable summary; ``err.report`` the full report."""

    def __init__(self, report: ValidationReport, summary: str) -> None:
        super().__init__(summary)
        self.report = report


class BatchNotFoundError(UserError, FileNotFoundError):
    """The batch id is neither in the landing folder nor accepted nor quarantined."""


@dataclass
class ValidationReport:
    """Outcome of validating one batch.

    Attributes:
        batch_id: Name of the batch folder.
        success: True when every expectation of every table passed.
        evaluated: Number of expectations evaluated (0 when the batch could not be read).
        failed: One dict per failed expectation or unreadable table: ``table``, ``expectation_type``,
            ``column``, ``check``, ``observed_value``, ``unexpected_count``, ``unexpected_examples``, ``message``.
        row_counts: Rows per table (tables that could be read).
        data_docs_index: The Data Docs ``index.html``.
        summary_path: The plain-text ``summary.md``.
        as_of: Time the batch was judged at (ISO 8601, UTC).
        validated_at: When the validation ran (ISO 8601, UTC).
        duration_s: Wall time of the validation (reading, GX run, Data Docs).
        data_docs_pages: Table -> Data Docs page of its validation result.
        location: Where the batch folder is now (set by :func:`gate`).
        notes: How the batch was judged (historical, inferred sales frequency), for the summary.
        families: Model family -> ``""`` when the batch can train it, else why not (e.g. "missing table orders").
        baseline: The last accepted batch it was compared with (``None``: first batch, or comparison disabled).
        comparison: One "what moved" entry per comparison expectation (:func:`compare.item`): previous and new
            value, ratio, bound, ``ok``, ``message``.
        warnings: Things that passed but deserve a look (e.g. a few rows with a new category value).
        profile: The batch's statistics the next batch is compared with (:func:`compare.profile`).
        already_accepted: Set on a report :func:`gate` returns for a batch accepted earlier (nothing was done).
    """

    batch_id: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]
    row_counts: dict[str, int]
    data_docs_index: Path | None
    summary_path: Path | None
    as_of: str = ""
    validated_at: str = ""
    duration_s: float = 0.0
    data_docs_pages: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    notes: list[str] = field(default_factory=list)
    families: dict[str, str] = field(default_factory=dict)
    baseline: str | None = None
    comparison: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict, repr=False)
    already_accepted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (paths as strings), e.g. for an Airflow XCom."""
        d = asdict(self)
        for key in ("data_docs_index", "summary_path"):
            d[key] = str(d[key]) if d[key] is not None else None
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValidationReport:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for key in ("data_docs_index", "summary_path"):
            d[key] = Path(d[key]) if d.get(key) else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> str:
        """The plain-text summary written to ``summary.md``."""
        return render_summary(self)


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def validate_batch(batch_dir: Path, settings: Settings, as_of: dt.datetime | None = None,
                   historical: bool | None = None) -> ValidationReport:
    """Validate every table present in a batch folder in one GX Checkpoint run and write its summary.

    Reading problems (missing file or column, unparsable values) are reported as a failed validation rather
    than raised. Data Docs are rebuilt under ``settings.gx_dir``; ``summary.md`` and ``report.json`` are
    written to ``settings.reports_dir / "validation" / <batch_id>``. Nothing is moved.

    Args:
        batch_dir: Folder with one file per table.
        settings: Paths and thresholds.
        as_of: Time to judge freshness at; defaults to now (inject a fixed time in tests).
        historical: Judge freshness as of the batch's newest timestamp; ``None``: as the batch's manifest or
            ``settings.validation.historical`` say.

    Returns:
        The report; ``report.success`` tells whether the batch may be used.
    """
    started = time.perf_counter()
    batch_dir = Path(batch_dir)
    batch_id = check_batch_id(batch_dir.name)  # it names the report folder
    as_of = _utc(as_of)
    if historical is None:
        historical = settings.validation.historical or bool(read_manifest(batch_dir).get("historical"))
    report_dir = _report_dir(settings, batch_id)
    report_dir.mkdir(parents=True, exist_ok=True)

    # Validations share the staging folder and the GX stores: one at a time.
    with file_lock(settings.gx_dir / ".validate.lock"):
        context = _context(settings)
        try:
            tables = read_batch(batch_dir)
        except BatchFormatError as exc:
            _quiet(context.build_data_docs)  # so the quarantine note can always link an existing index
            report = ValidationReport(
                batch_id=batch_id,
                success=False,
                evaluated=0,
                failed=_format_failures(getattr(exc, "problems", None) or str(exc).split("; ")),
                row_counts={},
                data_docs_index=_docs_index(context),
                summary_path=None,
            )
        else:
            report = _run_checkpoint(context, settings, batch_id, tables, as_of, historical)
            report.families = {name: s.reason for name, s in family_support(tables).items()}
            report.profile = compare.profile(tables)

    report.as_of = report.as_of or as_of.isoformat()  # the checkpoint sets it for a historical batch's own end
    report.validated_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report.duration_s = round(time.perf_counter() - started, 3)
    report.summary_path = report_dir / "summary.md"
    report.location = str(batch_dir)
    _write_report(report, report_dir)
    log.info(
        "Batch %s: %s (%d expectations, %d failed) in %.1fs",
        batch_id,
        "passed" if report.success else "FAILED",
        report.evaluated,
        len(report.failed),
        report.duration_s,
    )
    return report


def gate(batch_id: str, settings: Settings, as_of: dt.datetime | None = None,
         historical: bool | None = None) -> ValidationReport:
    """Validate ``landing_dir/<batch_id>``; accept it (``PENDING``) or quarantine it.

    Idempotent: an already accepted batch returns its stored report without new work (``already_accepted`` set;
    ``CURRENT`` stays where it is: ``shopflow data use`` moves it), and an already quarantined one (no longer in
    landing) raises again with its stored report.

    Args:
        batch_id: Folder name under ``settings.landing_dir``.
        settings: Paths and thresholds.
        as_of: Time to judge freshness at; defaults to now.
        historical: Judge freshness as of the batch's newest timestamp (``None``: manifest or settings decide).

    Returns:
        The report of the accepted batch.

    Raises:
        DataValidationError: The batch failed; it now lies in ``quarantine_dir/<batch_id>``.
        BatchNotFoundError: No such batch in landing, accepted or quarantined batches.
        InvalidIdError: ``batch_id`` is not a batch id (``..``, a path...): checked before any file is touched.
    """
    check_batch_id(batch_id)
    # Decide-and-move must not interleave with another gate (CLI and Airflow at once); validate_batch takes
    # its own, inner lock, always in this order.
    with file_lock(settings.gx_dir / ".gate.lock"):
        return _gate_locked(batch_id, settings, as_of, historical)


def _gate_locked(batch_id: str, settings: Settings, as_of: dt.datetime | None,
                 historical: bool | None = None) -> ValidationReport:
    # Refuses symlinked batch folders before anything is read, moved or deleted.
    landing = confined(settings.landing_dir / batch_id, settings.landing_dir)
    accepted = confined(settings.batches_dir / batch_id, settings.batches_dir)
    quarantined = confined(settings.quarantine_dir / batch_id, settings.quarantine_dir)

    if objectstore.pull_dir(settings, accepted):
        report = _stored_accepted_report(settings, batch_id)
        report.already_accepted = True
        if landing.is_dir():
            # Batch ids are content hashes (io.store_batch), so a re-landed copy holds the same data.
            log.info("Batch %s was accepted before; removing the duplicate %s", batch_id, landing)
            remove_tree(landing, settings.landing_dir)
        objectstore.delete_dir(settings, landing)
        with pointers.pointer_lock(settings):
            if pointers.read_current(settings) is None and pointers.read_pending(settings) is None:
                pointers.write_pending(settings, batch_id)  # nothing is current: publishing it needs no decision
        return report

    if not objectstore.pull_dir(settings, landing):
        objectstore.pull_dir(settings, quarantined)
        stored = quarantined / "report.json"
        if stored.exists():
            report = ValidationReport.from_dict(json.loads(stored.read_text()))
            raise DataValidationError(report, render_summary(report))
        raise BatchNotFoundError(
            f"Batch {batch_id!r} not found: no folder {landing} (and it was neither accepted in "
            f"{settings.batches_dir} nor quarantined in {settings.quarantine_dir}). "
            f"Landing holds: {sorted(p.name for p in _landing_batches(settings)) or 'nothing'}."
        )

    report = validate_batch(landing, settings, as_of=as_of, historical=historical)

    if report.success:
        report.location = str(accepted)
        # The report goes in first, so the rename below accepts the batch with its report in one step.
        # Note: batch_hash(accepted) then differs from batch_id; ids are computed once, at landing time.
        atomic_write(landing / "report.json", _dumps(report.to_dict()))
        with pointers.pointer_lock(settings):
            # PENDING before the move: after a crash in between, the batch is still in landing and gated again.
            pointers.write_pending(settings, batch_id)
            # A rename on one file system; across file systems a copy (the pipeline reruns from landing).
            move_tree(landing, accepted, settings.home)
            # Production: in the store before landing's copy goes (a crash in between re-lands a duplicate).
            objectstore.push_dir(settings, accepted)
            objectstore.delete_dir(settings, landing)
            pointers.append_history(settings, "accept", batch_id=batch_id, checks=report.evaluated,
                                    baseline=report.baseline)
        _write_report(report, _report_dir(settings, batch_id))
        log.info("Batch %s accepted; it becomes CURRENT once its features are built and materialised", batch_id)
        fault_point("after_accept")
        return report

    # Same id = same content, rejected again: keep the latest attempt.
    with pointers.pointer_lock(settings):
        if pointers.read_pending(settings) == batch_id:  # re-judged after a crash, and failed this time
            pointers.write_pending(settings, None)
    remove_tree(quarantined, settings.quarantine_dir)
    move_tree(landing, quarantined, settings.home)
    report.location = str(quarantined)
    summary = render_summary(report)
    report_dir = _report_dir(settings, batch_id)
    _write_report(report, report_dir)
    (quarantined / "summary.md").write_text(summary)
    (quarantined / "report.json").write_text(_dumps(report.to_dict()))
    objectstore.push_dir(settings, quarantined)
    objectstore.delete_dir(settings, landing)
    log.error("Batch %s quarantined in %s", batch_id, quarantined)
    raise DataValidationError(report, summary)


def current_or_latest_batch(settings: Settings) -> str | None:
    """The batch a pipeline run should gate: the newest landing batch, else ``PENDING``, else ``CURRENT``.

    With nothing new in landing, re-gating an accepted batch returns its stored report, so a rerun of the data DAG
    finishes publishing the pending batch (e.g. after a crash) or re-checks the current one, instead of failing.
    """
    latest = latest_landing_batch(settings)
    if latest is not None:
        return latest
    pending = pointers.read_pending(settings)
    if pending is not None and objectstore.pull_dir(settings, settings.batches_dir / pending):
        return pending
    current = pointers.read_current(settings)
    return current.batch_id if current is not None else None


def latest_landing_batch(settings: Settings) -> str | None:
    """Id of the most recently modified batch folder in ``landing_dir`` (hidden folders are skipped)."""
    if objectstore.enabled(settings):  # production: landing lives in the store
        stored = objectstore.list_dirs(settings, settings.landing_dir)
        return max(stored, key=lambda name: (stored[name], name)) if stored else None
    batches = _landing_batches(settings)
    if not batches:
        return None
    return max(batches, key=lambda p: (p.stat().st_mtime, p.name)).name


def render_summary(report: ValidationReport) -> str:
    """Plain-text summary naming each failed expectation with its table and column, plus counts."""
    status = "PASSED" if report.success else "FAILED"
    lines = [f"# Data validation of batch {report.batch_id}: {status}", ""]
    if report.evaluated:
        lines.append(f"{report.evaluated} expectations evaluated, {len(report.failed)} failed.")
    else:
        lines.append(f"The batch could not be read as ShopFlow tables ({len(report.failed)} problem(s)).")
    if report.as_of:
        lines.append(f"Judged as of {report.as_of}; validated at {report.validated_at}.")
    if report.row_counts:
        lines.append("Rows: " + ", ".join(f"{t}={n}" for t, n in report.row_counts.items()) + ".")
    for note in report.notes:
        lines.append(f"Note: {note}.")
    for warning in report.warnings:
        lines.append(f"Warning: {warning}")
    if report.location:
        lines.append(f"Batch folder: {report.location}")
    if report.data_docs_index:
        lines.append(f"Data Docs: {report.data_docs_index}")
    if report.families:
        lines += ["", "Model families this batch can train: "
                  + (", ".join(f for f, why in report.families.items() if not why) or "none") + "."]
        lines += [f"- {f}: not trainable ({why})" for f, why in report.families.items() if why]
    if report.failed:
        by_table: dict[str, int] = {}
        for f in report.failed:
            by_table[f["table"]] = by_table.get(f["table"], 0) + 1
        lines += ["", "Failures per table: " + ", ".join(f"{t}={n}" for t, n in by_table.items()) + ".", ""]
        lines.append("## Failed expectations" if report.evaluated else "## Problems")
        lines.append("")
        for i, f in enumerate(report.failed, 1):
            lines.append(f"{i}. {f['message']}")
    if report.baseline and report.comparison:
        failed = sum(not e["ok"] for e in report.comparison)
        shown = [e for e in report.comparison if e["ok"] and compare.moved(e)]
        shown.sort(key=lambda e: -abs(math.log(e["ratio"])) if e.get("ratio") else 0.0)
        lines += ["", f"## What moved since batch {report.baseline} (the last accepted batch)", ""]
        if failed:
            lines.append(f"{failed} comparison(s) failed: see the failed expectations above.")
        lines += [f"- {e['message']}" for e in shown]
        rest = len(report.comparison) - len(shown) - failed
        if rest:
            lines.append(f"{rest} other compared statistic(s) changed by {compare.REPORT_MOVE:.0%} or less.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------
# GX plumbing
# --------------------------------------------------------------------------------------------------------------


def _context(settings: Settings) -> FileDataContext:
    """The file-backed GX context under ``settings.gx_dir`` (scaffolded on first use)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", context_root_dir=settings.gx_dir)
    bars = context.variables.progress_bars  # a ProgressBarsConfig when set in-process, a dict when reloaded
    if bars is None or any(bool(bars[k]) for k in ("globally", "metric_calculations") if k in bars):
        # tqdm "Calculating Metrics" bars would flood Airflow task logs; persisted once in the config.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    return context


def _ensure_checkpoint(context: FileDataContext, settings: Settings, tables: list[str],
                       baseline: Mapping[str, Any] | None = None) -> Any:
    """The one Checkpoint, (re)creating datasource, suites and validation definitions when they changed.

    A fingerprint of the generated suites (plus staging path and GX version) is kept beside the project:
    when it matches, the stored Checkpoint is reused as is. Otherwise everything is add-or-update by name,
    so reruns and schema or threshold changes converge on the same objects (unchanged expectations keep
    their ids). The Checkpoint validates exactly ``tables`` (the batch's tables), so batches holding
    different tables (or compared with a previous batch holding other tables) rebuild it.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    from pipelines.validation.suites import build_suites, suite_name

    staging = settings.gx_dir / STAGING
    suites = build_suites(settings.validation, tables, baseline)
    fingerprint = hashlib.sha256(
        json.dumps(
            [gx.__version__, str(staging.resolve()), RESULT_FORMAT, [s.to_json_dict() for s in suites.values()]],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    marker = settings.gx_dir / FINGERPRINT_FILE
    if marker.exists() and marker.read_text().strip() == fingerprint:
        try:
            return context.checkpoints.get(CHECKPOINT)
        except Exception:  # noqa: BLE001 - a damaged or hand-edited project is simply rebuilt below
            log.warning("Stored GX checkpoint unusable; recreating it", exc_info=True)

    # A dataframe asset would need the frame as batch_parameters, and a Checkpoint passes the same
    # batch_parameters to every validation definition: with one frame per table that cannot work, so the
    # coerced tables are staged as Parquet and read by a filesystem datasource instead.
    ds: Any  # a PandasFilesystemDatasource; GX's accessors are typed as the generic Datasource
    if DATASOURCE in context.data_sources.all():
        ds = context.data_sources.get(DATASOURCE)
        if Path(str(ds.base_directory)).resolve() != staging.resolve():
            ds = context.data_sources.update_pandas_filesystem(name=DATASOURCE, base_directory=staging)
    else:
        ds = context.data_sources.add_pandas_filesystem(name=DATASOURCE, base_directory=staging)

    definitions = []
    for table, suite in suites.items():
        asset = ds.get_asset(table) if table in ds.get_asset_names() else ds.add_parquet_asset(name=table)
        existing = [b for b in asset.batch_definitions if b.name == table]
        batch_def = existing[0] if existing else asset.add_batch_definition_path(name=table, path=f"{table}.parquet")
        suite = context.suites.add_or_update(suite)
        definitions.append(
            context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=suite_name(table), data=batch_def, suite=suite)
            )
        )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=CHECKPOINT,
            validation_definitions=definitions,
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])],
            result_format=dict(RESULT_FORMAT),
        )
    )
    atomic_write(marker, fingerprint + "\n")
    return checkpoint


def _run_checkpoint(
    context: FileDataContext,
    settings: Settings,
    batch_id: str,
    tables: Mapping[str, pd.DataFrame],
    as_of: dt.datetime,
    historical: bool = False,
) -> ValidationReport:
    from great_expectations.core.run_identifier import RunIdentifier

    from pipelines.validation.suites import (SUITE_PREFIX, expectation_parameters, freshness_windows, judged_at,
                                            with_derived)

    base = compare.baseline(settings, batch_id) if settings.validation.compare else None
    base_id, base_profile = base if base is not None else (None, {})
    notes = freshness_windows(tables, settings.validation, as_of, historical)[1] + _comparison_notes(
        settings, tables, base_id, base_profile)
    staging = settings.gx_dir / STAGING
    remove_tree(staging, settings.gx_dir)
    staging.mkdir(parents=True)
    for name, df in tables.items():
        with_derived(name, df).to_parquet(staging / f"{name}.parquet", index=False)
    try:
        checkpoint = _ensure_checkpoint(context, settings, list(tables), base_profile)
        result = checkpoint.run(
            expectation_parameters=expectation_parameters(tables, settings.validation, as_of, historical,
                                                          base_profile),
            # run_name = batch id, so Data Docs and stored results are filed per batch.
            run_id=RunIdentifier(run_name=batch_id, run_time=dt.datetime.now(dt.timezone.utc)),
        )
    finally:
        remove_tree(staging, settings.gx_dir)

    failed: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    warnings: list[str] = []
    evaluated = 0
    pages: dict[str, str] = {}
    for key, suite_result in result.run_results.items():
        table = suite_result.suite_name.removeprefix(SUITE_PREFIX)
        evaluated += int(suite_result.statistics.get("evaluated_expectations", 0))
        urls = context.get_docs_sites_urls(resource_identifier=key, site_name=DOCS_SITE)
        if urls and urls[0].get("site_url"):
            pages[table] = str(_url_to_path(str(urls[0]["site_url"])))
        for res in suite_result.results:
            entry = _comparison_entry(table, res, base_profile, settings)
            if entry is not None:
                moved.append(entry)
                if res.success and entry["check"] == "new_values" and entry.get("new"):
                    warnings.append(entry["message"].rstrip(".") + " (passed: under the bound).")
            if not res.success:
                failure = _describe_failure(table, res)
                if entry is not None and not _exception_message(res.exception_info):
                    # Previous value, new value and bound say more than GX's "observed X (allowed: ...)".
                    why = res.expectation_config.notes
                    failure["message"] = entry["message"] + (f" Why: {why}" if isinstance(why, str) and why else "")
                failed.append(failure)
    order = {t: i for i, t in enumerate(ALL_TABLES)}
    failed.sort(key=lambda f: order.get(f["table"], len(order)))  # stable: keeps suite order within a table
    return ValidationReport(
        batch_id=batch_id,
        success=bool(result.success),
        evaluated=evaluated,
        failed=failed,
        row_counts={name: int(len(df)) for name, df in tables.items()},
        data_docs_index=_docs_index(context),
        summary_path=None,
        data_docs_pages=pages,
        notes=notes,
        baseline=base_id,
        comparison=_jsonable(moved),
        warnings=warnings,
        as_of=judged_at(tables, as_of, historical).isoformat(),
    )


def _comparison_entry(table: str, res: Any, base_profile: Mapping[str, Any], settings: Settings) -> dict | None:
    """The "what moved" entry of a comparison expectation's result, or ``None`` for any other expectation."""
    meta = dict(res.expectation_config.meta or {})
    if meta.get("check") not in compare.CHECKS or table not in base_profile:
        return None
    try:
        return compare.item(table, meta, dict(res.result or {}), bool(res.success), base_profile[table],
                            settings.validation)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a result GX could not compute: reported as failed
        log.warning("Could not summarise comparison %s of %s", meta.get("check"), table, exc_info=True)
        return None


def _comparison_notes(settings: Settings, tables: Mapping[str, pd.DataFrame], base_id: str | None,
                      base_profile: Mapping[str, Any]) -> list[str]:
    """What the comparison with the last accepted batch covered, in words."""
    if not settings.validation.compare:
        return ["comparison with the last accepted batch is off (SHOPFLOW_VALIDATION__COMPARE=false)"]
    if base_id is None:
        return ["no earlier accepted batch: the comparison checks (shifts, vanished categories, row counts) start "
                "with the next batch"]
    minimum = settings.validation.min_compare_rows
    compared = [t for t in tables if base_profile.get(t, {}).get("rows", 0) >= minimum]
    absent = [t for t in tables if t not in base_profile]
    small = [t for t in tables if t in base_profile and t not in compared]
    note = f"compared with the last accepted batch {base_id}: " + (", ".join(compared) or "no table")
    if absent:
        note += f"; not in {base_id}: {', '.join(absent)}"
    if small:
        note += f"; fewer than {minimum} rows in {base_id}, not compared: {', '.join(small)}"
    return [note]


def _describe_failure(table: str, res: Any) -> dict[str, Any]:
    """One failed ExpectationValidationResult as a JSON-ready dict with a readable message."""
    cfg = res.expectation_config
    kwargs = dict(cfg.kwargs)
    meta = dict(cfg.meta or {})
    notes = cfg.notes if isinstance(cfg.notes, str) else " ".join(cfg.notes or [])
    result = dict(res.result or {})
    column = meta.get("column") or kwargs.get("column") or (
        ", ".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
    where = f"{table}.{column}" if column else table
    distinct = list(dict.fromkeys(map(_hashable, result.get("partial_unexpected_list") or [])))
    examples = _jsonable(distinct[:MAX_EXAMPLES])
    observed = _jsonable(result.get("observed_value"))

    error = _exception_message(res.exception_info)
    if error:
        detail = f"it could not be evaluated: {error}"
    elif "unexpected_count" in result and result.get("element_count") is not None:
        n_bad, n = result["unexpected_count"], result["element_count"]
        pct = result.get("unexpected_percent") or 0.0
        detail = f"{n_bad} of {n} values ({pct:.2f}%) do not comply"
        mostly = kwargs.get("mostly")
        if mostly is not None and mostly < 1:
            detail += f" (at most {100 * (1 - mostly):.2f}% allowed)"
        if any(e is not None for e in examples) and (mostly is None or mostly >= 1):
            # With a partial `mostly` bound the "unexpected" values are the common ones: not worth quoting.
            detail += f", e.g. {examples}"
    else:
        detail = f"observed {_short(observed)} (allowed: {_expected(kwargs)})"
    rule = meta.get("rule") or cfg.description
    expected = f"expected {rule} ({cfg.type})" if rule else f"{cfg.type} failed"
    message = f"{where}: {expected}, but {detail.rstrip('.')}."
    if notes:
        message += f" Why: {notes}"
    return {
        "table": table,
        "expectation_type": cfg.type,
        "column": column,
        "check": meta.get("check"),
        "observed_value": observed,
        "unexpected_count": _jsonable(result.get("unexpected_count")),
        "unexpected_examples": examples,
        "message": message,
    }


def _exception_message(info: Any) -> str | None:
    """GX puts ``{raised_exception, exception_message}`` either directly or per metric id in exception_info."""
    if not isinstance(info, Mapping):
        return None
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages = [str(c.get("exception_message")) for c in candidates if c.get("raised_exception")]
    return "; ".join(messages) or None


def _expected(kwargs: Mapping[str, Any]) -> str:
    if "column_set" in kwargs:
        return f"exactly the columns {sorted(kwargs['column_set'])}"
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None and hi is not None:
        return f"between {_short(lo)} and {_short(hi)}"
    if lo is not None:
        return f"at least {_short(lo)}"
    if hi is not None:
        return f"at most {_short(hi)}"
    if "value" in kwargs:
        return f"{_short(kwargs['value'])}"
    return "a different value"


def _format_failures(problems: list[str]) -> list[dict[str, Any]]:
    """One failure per BatchFormatError problem ("table: ..." or "table.column: ...")."""
    out: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in problems)):
        head = part.split(":", 1)[0]
        table, _, column = head.partition(".")
        if table not in ALL_TABLES:
            table, column = "batch", ""
        out.append(
            {
                "table": table,
                "expectation_type": "readable_batch",
                "column": column or None,
                "check": "format",
                "observed_value": None,
                "unexpected_count": None,
                "unexpected_examples": [],
                "message": f"{part} (file missing, unreadable or not matching the schema).",
            }
        )
    return out


def _docs_index(context: FileDataContext) -> Path | None:
    urls = context.get_docs_sites_urls(site_name=DOCS_SITE, only_if_exists=False)
    return _url_to_path(str(urls[0]["site_url"])) if urls and urls[0].get("site_url") else None


def _url_to_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path)) if url.startswith("file:") else Path(url)


def _quiet(fn: Any) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - Data Docs are a convenience; never mask the real failure
        log.warning("Could not build Data Docs", exc_info=True)


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


def _report_dir(settings: Settings, batch_id: str) -> Path:
    return settings.reports_dir / "validation" / batch_id


def _write_report(report: ValidationReport, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(report_dir / "summary.md", render_summary(report))
    atomic_write(report_dir / "report.json", _dumps(report.to_dict()))


def _stored_accepted_report(settings: Settings, batch_id: str) -> ValidationReport:
    for path in (settings.batches_dir / batch_id / "report.json", _report_dir(settings, batch_id) / "report.json"):
        if path.exists():
            report = ValidationReport.from_dict(json.loads(path.read_text()))
            if report.success:
                return report
    # Accepted before this gate stored reports (or the report was deleted): do not re-judge freshness.
    log.warning("Batch %s is accepted but has no stored report; returning a minimal one", batch_id)
    return ValidationReport(
        batch_id=batch_id,
        success=True,
        evaluated=0,
        failed=[],
        row_counts={},
        data_docs_index=None,
        summary_path=None,
        location=str(settings.batches_dir / batch_id),
    )


def _landing_batches(settings: Settings) -> list[Path]:
    if not settings.landing_dir.is_dir():
        return []
    # Dot/underscore folders are batches still being written (write-then-rename) or tool droppings.
    return [p for p in settings.landing_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]


def _utc(ts: dt.datetime | None) -> dt.datetime:
    if ts is None:
        return dt.datetime.now(dt.timezone.utc)
    stamp = pd.Timestamp(ts)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _short(value: Any, limit: int = 120) -> str:
    value = _jsonable(value)
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Plain JSON types from GX/pandas/numpy values (timestamps become ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, (int, str)):
        return value
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(value):
            return None
    return str(value)
