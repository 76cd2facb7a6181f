"""Test hook: kill the running process at a named step boundary, to prove that every boundary is crash-safe.

``SHOPFLOW_FAULT_AT=<point>`` makes :func:`fault_point` of that name send ``SIGKILL`` to its own process, exactly
like ``kill -9`` at that instant (no ``finally``, no ``atexit``, no flush). Unset (always, outside tests), a fault
point does nothing. The fault-injection tests (``tests/integration/test_data_faults.py``) set it for one real run,
then check that the stored state is consistent and that a plain rerun heals it.

Points of the data pipeline, in order: ``after_accept``, ``during_build``, ``after_build``, ``after_apply``,
``after_materialize``, ``before_switch``, ``after_switch``. Points of training (``tests/integration/
test_training_faults.py``): ``train:fit``, ``train:logged``, ``train:finished``, ``register:created``,
``register:aliased``, ``train:registered``, ``gate:decided``, ``gate:applied``.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "SHOPFLOW_FAULT_AT"

log = logging.getLogger(__name__)


def fault_point(name: str) -> None:
    """Die here with ``SIGKILL`` when ``SHOPFLOW_FAULT_AT`` equals ``name``; otherwise return at once."""
    if os.environ.get(ENV) == name:
        log.warning("%s=%s: killing process %d", ENV, name, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
