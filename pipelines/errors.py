"""Errors caused by what the user gave (data, ids, parameters): retrying cannot fix them.

Entry points treat them alike: the CLI prints the message as one line and exits non-zero, Airflow tasks and KFP
components fail at once without retries, and the message is the whole story (no traceback needed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class UserError(Exception):
    """A mistake in the input that will repeat on every retry; ``str(err)`` says what to fix, on one line."""


@contextlib.contextmanager
def user_errors_as(final: type[BaseException]) -> Iterator[None]:
    """Re-raise a :class:`UserError` (or invalid parameters) as ``final``, e.g. Airflow's ``AirflowFailException``
    (the orchestrator's "do not retry"), keeping the one-line message. The library itself never imports Airflow:
    the DAG passes the class."""
    from pydantic import ValidationError

    try:
        yield
    except (UserError, ValidationError) as exc:
        raise final(str(exc)) from exc
