"""Data-quality gate: GX suites generated from the raw schema and the accept/quarantine decision.

Import :mod:`pipelines.validation.gate` for ``gate``/``validate_batch``; Great Expectations itself is only
imported when a validation runs.
"""
