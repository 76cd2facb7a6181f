"""Run long-lived child programs (BentoML, Airflow, MLflow UIs) so that stopping ShopFlow stops all of them.

Each child starts in its own session (process group), so its helpers (BentoML's arbiter and workers, Airflow's
``serve-logs`` and gunicorn workers) can be signalled together; SIGTERM and SIGINT to the parent are turned into
:class:`Stopped` and every group gets SIGTERM, then SIGKILL after a grace period. Descendants that left their group
(a daemon calling ``setsid``) are found from ``/proc`` before the signal and killed too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

GRACE_SECONDS = 6.0
"""How long children may take to exit after SIGTERM before they are killed (the whole stop stays under 10 s)."""


class Stopped(Exception):
    """The parent received SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Stopped` (restored afterwards)."""

    def handler(signum, _frame):
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def descendants(pid: int) -> list:
    """Every live descendant of ``pid`` (``psutil.Process`` objects; they remember their start time, so a reused
    PID is not mistaken for them)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class Supervisor:
    """Starts children in their own sessions and stops them all (see the module docstring)."""

    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self.children: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.children.append(proc)
        return proc

    def stop(self) -> None:
        """SIGTERM to every child's group, SIGKILL to whatever is left after the grace period; reaps the children."""
        import psutil

        tree = []
        for proc in self.children:
            if proc.poll() is None:
                tree.append(psutil.Process(proc.pid))
            tree += descendants(proc.pid)
        self._signal_all(signal.SIGTERM, tree)
        _, alive = psutil.wait_procs(tree, timeout=self.grace)
        if alive:
            self._signal_all(signal.SIGKILL, alive)
            psutil.wait_procs(alive, timeout=3)
        for proc in self.children:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass

    def _signal_all(self, signum: int, procs: list) -> None:
        import psutil

        for proc in self.children:
            try:
                os.killpg(proc.pid, signum)  # the child's session: its pid is the group id
            except (ProcessLookupError, PermissionError):
                pass
        for p in procs:
            try:
                p.send_signal(signum)
            except psutil.Error:
                pass


def check_port(host: str, port: int, option: str = "--port") -> None:
    """Raise ``ValueError`` (one line, naming the option) unless ``host:port`` is a valid, free TCP port."""
    if not 1 <= port <= 65535:
        raise ValueError(f"{option} must be between 1 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"--host {host!r} is not a usable address ({exc})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is not "in use"
        try:
            s.bind(address)
        except OSError as exc:
            raise ValueError(f"{option} {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True), the process exits or ``timeout`` passes (False)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
