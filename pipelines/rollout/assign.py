"""Sticky, monotone traffic assignment.

A unit (customer) gets a fixed point ``u`` in ``[0, 1)`` per experiment from SHA-256 of ``experiment_id`` and the
unit id; it is on the challenger iff ``u < weight``. So the same unit always gets the same arm at a given weight
(in any process, on any machine: no ``hash()`` randomisation), ramping the weight up only moves units from the
champion to the challenger, and a new experiment (new id) reshuffles everyone.
"""

from __future__ import annotations

import hashlib

CHAMPION_ARM = "champion"
CHALLENGER_ARM = "challenger"


def bucket(experiment_id: str, unit_id: str) -> float:
    """The unit's fixed point in ``[0, 1)`` for this experiment (first 64 bits of SHA-256)."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def arm_for(experiment_id: str, unit_id: str, weight: float) -> str:
    """``challenger`` iff the unit's bucket is below the challenger ``weight``."""
    return CHALLENGER_ARM if bucket(experiment_id, unit_id) < weight else CHAMPION_ARM
