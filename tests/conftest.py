"""Shared fixtures: isolated ShopFlow homes and one small end-to-end pipeline run reused by integration tests."""

from __future__ import annotations

import contextlib

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import Settings, get_settings

SMALL_CUSTOMERS = 300
BIN = Path(sys.executable).parent


# Modules with tests on the session's pipeline home: they run on one xdist worker, so its `shopflow run` happens once.
SHARED_HOME_MODULES = frozenset(f"tests/integration/{name}.py" for name in (
    "test_pipeline_e2e", "test_serving", "test_tuning", "test_ui", "test_ui_browser"))
# The longest groups start first (one per worker), so neither is the last to start.
FIRST_GROUPS = ("pipeline_home", "tests/integration/test_production_e2e.py")


def xdist_group_of(nodeid: str) -> str:
    """The xdist work unit of a test: its module (module-scoped fixtures are built once), or the shared home's."""
    module = nodeid.split("::")[0]
    return "pipeline_home" if module in SHARED_HOME_MODULES else module


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    # pytest 9 derives nodeids from a structured id, so xdist's `--dist loadgroup` (which rewrites `_nodeid`) no
    # longer groups anything; a scope scheduler with our own grouping does it instead.
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return ByGroup(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    strays = sorted({item.nodeid.split("::")[0] for item in items
                     if "pipeline_home" in getattr(item, "fixturenames", ())  # the closure: pipeline_settings too
                     and xdist_group_of(item.nodeid) != "pipeline_home"})
    if strays:
        raise pytest.UsageError(f"add {', '.join(strays)} to SHARED_HOME_MODULES in tests/conftest.py: they use "
                                f"the shared pipeline home")

    def rank(item) -> int:
        group = xdist_group_of(item.nodeid)
        return FIRST_GROUPS.index(group) if group in FIRST_GROUPS else len(FIRST_GROUPS)

    items.sort(key=rank)  # stable: each module keeps its own order


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Settings with an empty home in tmp_path (also exported, for code that calls get_settings())."""
    monkeypatch.setenv("SHOPFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def shopflow(home: Path, *args: str, check: bool = True, timeout: int = 900, **env) -> subprocess.CompletedProcess:
    """Run the real ``shopflow`` console script against ``home``."""
    full_env = dict(os.environ, SHOPFLOW_HOME=str(home), SHOPFLOW_CUSTOMERS=str(SMALL_CUSTOMERS))
    full_env.update(env)
    proc = subprocess.run([str(BIN / "shopflow"), *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"shopflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory) -> Path:
    """A home on which `shopflow run` (Airflow -> GX -> Feast -> MLflow) has completed once, at small scale.

    For local iteration, ``SHOPFLOW_TEST_REUSE_HOME=<dir>`` reuses a home where that run already completed (tests
    may add model versions to it); CI never sets it.
    """
    reuse = os.environ.get("SHOPFLOW_TEST_REUSE_HOME")
    if reuse and not os.environ.get("CI"):
        return Path(reuse)
    home = tmp_path_factory.mktemp("e2e") / "home"
    proc = shopflow(home, "run")
    (home / "first_run.out").write_text(proc.stdout)
    return home


@pytest.fixture
def pipeline_settings(pipeline_home, monkeypatch) -> Settings:
    monkeypatch.setenv("SHOPFLOW_HOME", str(pipeline_home))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def require_service(host: str, port: int, name: str) -> None:
    """Skip outside CI when a production-profile service is absent; in CI its absence is a failure."""
    import socket

    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} at {host}:{port} is required in CI: {exc}")
        pytest.skip(f"{name} at {host}:{port} not reachable: {exc}")


@contextlib.contextmanager
def throwaway_postgres():
    """A fresh database on the local PostgreSQL (127.0.0.1:5432), dropped afterwards; yields its URI."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import uuid

    import psycopg2

    name = f"shopflow_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def moto_s3(log: Path):
    """An S3 endpoint on localhost (``moto_server``, buckets in its memory only) for the test; yields its URL.

    Stopped by its process group afterwards, whatever the test did; its output goes to ``log``.
    """
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(log, "w") as out:
        server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"moto_server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def two_version_registry(root: Path, model: str, experiment: str) -> str:
    """A SQLite MLflow registry under ``root`` holding versions 1 and 2 of a trivial sklearn model named ``model``
    (logged for real); returns its URI."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # other tests may have pointed the process-wide registry elsewhere
    exp = mlflow.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    for constant in (0, 1):
        with mlflow.start_run(experiment_id=exp):
            clf = DummyClassifier(strategy="constant", constant=constant).fit([[0], [1]], [0, 1])
            mlflow.sklearn.log_model(clf, name="model", pip_requirements=["scikit-learn"],
                                     registered_model_name=model)
    return uri


@contextlib.contextmanager
def two_arm_settings(monkeypatch, home: Path, registry_uri: str, model: str, **env: str):
    """Settings on ``home`` and ``registry_uri`` with ``model`` v1 as champion and v2 as challenger.

    Extra ``env`` entries are set as ``SHOPFLOW_<KEY>``. On exit the settings cache and the rollout store engines
    are reset, so the next test starts from a fresh store.
    """
    from pipelines import tracking
    from pipelines.rollout.store import reset_stores

    monkeypatch.setenv("SHOPFLOW_HOME", str(home))
    monkeypatch.setenv("SHOPFLOW_MLFLOW_TRACKING_URI", registry_uri)
    for key, value in env.items():
        monkeypatch.setenv(f"SHOPFLOW_{key.upper()}", value)
    get_settings.cache_clear()
    s = get_settings()
    client = tracking.configure(s)
    client.set_registered_model_alias(model, tracking.CHAMPION, "1")
    client.set_registered_model_alias(model, tracking.CHALLENGER, "2")
    try:
        yield s
    finally:
        get_settings.cache_clear()
        reset_stores([s.rollout_db_uri])


def run_concurrent_writers(store, threads: int, writer) -> list[BaseException]:
    """Run ``writer(target, t)`` on ``threads`` threads, alternating between ``store`` and a second engine on the
    same database (a second "process" competing for it); returns what the writers raised."""
    import threading

    from pipelines.rollout.store import RolloutStore

    other = RolloutStore(store.uri)
    errors: list[BaseException] = []

    def guarded(target, t: int) -> None:
        try:
            writer(target, t)
        except BaseException as exc:  # surfaced to the test through the return value
            errors.append(exc)

    pool = [threading.Thread(target=guarded, args=(store if t % 2 else other, t)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    other.dispose()
    return errors
