"""Small shared helpers: device choice, seeding, git lineage, atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pipelines.settings import PROJECT_ROOT


def pick_device() -> str:
    """``cuda`` when a GPU is visible to torch, else ``cpu``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # torch is a dependency, but the library should not die without it
        return "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (if importable)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch CPU work on ``n`` intra-op threads, restoring the previous setting afterwards.

    ShopFlow's networks are small: on a 2-core machine, intra-op threads cost more in synchronisation than they
    save, and one thread also keeps float reductions in a fixed order (reproducible results).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pinned_requirements(*dists: str) -> list[str]:
    """``name==version`` of installed distributions, for an MLflow model's ``pip_requirements``.

    Given explicitly because MLflow's inference re-imports the model in a subprocess (10-20 s per log) and misses
    lazily imported libraries. Local version labels (torch's ``+cpu``) are dropped: PyPI cannot install them.
    A distribution that is not installed (e.g. ``shopflow`` run from a bare checkout) is listed unpinned.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def code_fingerprint(family: str) -> str:
    """Content hash of the code a family's training runs: the platform, the family's own package and the Feast
    repository, committed or not, with or without a git checkout (other families' packages are left out, so
    editing one family does not retrain the others).
    """
    import hashlib

    models = PROJECT_ROOT / "pipelines" / "models"
    files = sorted([*(PROJECT_ROOT / "pipelines").rglob("*.py"), *(PROJECT_ROOT / "feature_repo").glob("*.py")])
    digest = hashlib.sha256()
    for path in files:
        if path.is_relative_to(models) and path.parent != models:
            # A family package (models/<name>/...) or, in the flat layout, a family module (models/<name>.py).
            owner = path.relative_to(models).parts[0]
        elif path.parent == models and path.stem != "__init__":
            owner = path.stem
        else:
            owner = family
        if owner != family:
            continue
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def git_commit() -> str:
    """Commit of the checkout the code runs from, with ``-dirty`` when it has uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + ``os.replace`` so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))
