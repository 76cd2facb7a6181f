"""Plain functions around the Feast feature store, for both settings profiles.

The Feast objects live once, in ``feature_repo/`` (the folder ``feast apply`` works on); this module imports those
modules the way the Feast CLI does and builds the store configuration in code from :class:`Settings`:

* ``local``: file offline store over a feature snapshot, SQLite online store and file registry under
  ``settings.feast_dir``.
* ``production``: PostgreSQL offline store (one schema per snapshot, :mod:`pipelines.features.offline`), Redis
  online store, SQL registry on PostgreSQL.

The file sources' paths are relative file names, which Feast resolves against ``RepoConfig.repo_path``: every store
built here points that at :func:`pipelines.features.snapshot.features_root` (the snapshot ``CURRENT`` names, or a
pinned one), so switching a new snapshot in never touches the registry. In production the same sources are tables
of unqualified names, and the store's ``search_path`` is that snapshot's schema.

Nothing happens at import: every function takes the settings it works for.
"""

from __future__ import annotations

import importlib
import sys
import threading
import weakref
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pandas as pd

from pipelines.features.build import FEATURE_TABLES, feature_path
from pipelines.features.snapshot import features_root
from pipelines.settings import PROJECT_ROOT, Settings

FEATURE_REPO = PROJECT_ROOT / "feature_repo"
"""The Feast repository: ``feature_store.yaml`` (local profile, for the CLI) and the object definitions."""

PROJECT = "shopflow"
"""Feast project; it namespaces registry entries and online-store keys."""

# Materialization reads from the start of time: Feast writes only the newest row per entity anyway.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

REGISTRY_FILE = "registry.db"
ONLINE_STORE_FILE = "online_store.db"
# Short registry cache: several processes (Airflow tasks, serving) share one registry and must see a fresh apply.
REGISTRY_CACHE_TTL_SECONDS = 60


def feast_env(settings: Settings) -> dict[str, str]:
    """Environment for running the ``feast`` CLI in ``feature_repo/`` against ``settings`` (local profile).

    ``feature_store.yaml`` reads ``${SHOPFLOW_FEAST_DIR}``. Use as ``subprocess.run(["feast", "apply"],
    cwd=FEATURE_REPO, env={**os.environ, **feast_env(settings)})``. The CLI resolves the sources' relative paths
    against ``feature_repo/``, so only its registry commands (``apply``, ``plan``, listing) are meaningful; reads go
    through this module, which points them at a snapshot.
    """
    return {
        "SHOPFLOW_HOME": str(settings.home),
        "SHOPFLOW_PROFILE": "local",
        "SHOPFLOW_FEAST_DIR": str(settings.feast_dir),
    }


def registry_uri(settings: Settings) -> str:
    """SQLAlchemy URL of the production registry (psycopg 3 driver, which Feast standardises on)."""
    uri = settings.production.feast_registry_uri or settings.production.postgres_uri
    for plain in ("postgresql://", "postgres://"):
        if uri.startswith(plain):
            return "postgresql+psycopg://" + uri[len(plain) :]
    return uri


def repo_config(settings: Settings, features: Path | None = None):
    """The Feast ``RepoConfig`` of the settings' profile (see the module docstring).

    Args:
        settings: ShopFlow settings.
        features: Folder of feature files to read; default :func:`pipelines.features.snapshot.features_root`.

    Returns:
        feast.RepoConfig
    """
    from feast import RepoConfig
    from sqlalchemy.pool import NullPool

    features = features if features is not None else features_root(settings)
    offline_store: dict = {"type": "file"}
    if settings.profile == "production":
        from pipelines.features.offline import store_config

        offline_store = store_config(settings, features)
        registry = {
            "registry_type": "sql",
            "path": registry_uri(settings),
            "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
            # Every call builds its own store and Feast never disposes the engine: pooling would leave connections
            # open until garbage collection. Registry reads are cached, so connecting per query costs little.
            "sqlalchemy_config_kwargs": {"echo": False, "poolclass": NullPool},
        }
        # skip_dedup: materialising writes each entity's values even when older than the stored ones, so going back
        # to an earlier batch (`shopflow data use`) serves its values; one data run at a time writes (publish lock).
        online_store = {"type": "redis", "connection_string": settings.production.redis_connection,
                        "skip_dedup": True}
    else:
        registry = {
            "registry_type": "file",
            "path": str(settings.feast_dir / REGISTRY_FILE),
            "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
        }
        online_store = {"type": "sqlite", "path": str(settings.feast_dir / ONLINE_STORE_FILE)}
    return RepoConfig(
        project=PROJECT,
        provider="local",
        registry=registry,
        online_store=online_store,
        offline_store=offline_store,
        entity_key_serialization_version=3,
        repo_path=features,
    )


def get_store(settings: Settings, features: Path | None = None):
    """A ``FeatureStore`` for ``settings`` (creates the local Feast folder if needed).

    Args:
        settings: ShopFlow settings.
        features: Folder its offline reads and materialisation read feature files from; default: the snapshot
            ``CURRENT`` names (or the pinned one), see :func:`pipelines.features.snapshot.features_root`.

    Returns:
        feast.FeatureStore
    """
    from feast import FeatureStore

    if settings.profile == "local":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(FEATURE_REPO), config=repo_config(settings, features))


_SHARED: dict[tuple, object] = {}
_SHARED_LOCK = threading.Lock()


def shared_store(settings: Settings):
    """One ``FeatureStore`` per store configuration for the whole process (servers: every loaded model version).

    Feast keeps one process-wide cache of resolved online requests and clears it whenever a call comes from a
    store whose registry snapshot differs from the previous call's, so two stores in one process (say a champion's
    and a challenger's) would resolve every request from scratch.
    """
    key = (settings.profile, str(settings.feast_dir.resolve()), registry_uri(settings)
           if settings.profile == "production" else "", settings.production.redis_connection
           if settings.profile == "production" else "")
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = get_store(settings)
        return _SHARED[key]


def _repo_modules() -> dict[str, ModuleType]:
    """Import every definition file of ``feature_repo/`` under the module name ``feast apply`` gives it.

    The CLI runs from the repo folder with it on ``sys.path`` and imports ``entities.py`` as ``entities`` (a file in
    a sub-folder as ``folder.file``), and the definitions import each other that way; any other module name would
    create a second, distinct copy of every object. Files are found like the CLI does (``.feastignore`` honoured).
    """
    from feast.repo_operations import get_repo_files

    repo = FEATURE_REPO.resolve()
    if str(repo) not in sys.path:
        sys.path.append(str(repo))  # appended, like the CLI: never shadows an installed package
    modules = {}
    for path in get_repo_files(repo):
        name = ".".join(path.relative_to(repo).with_suffix("").parts)
        module = importlib.import_module(name)
        if Path(module.__file__ or "").resolve() != path:
            raise ImportError(f"module {name!r} resolves to {module.__file__}, not to {path}")
        modules[name] = module
    return modules


def definitions(settings: Settings) -> list:
    """Every Feast object defined in ``feature_repo/`` (file sources hold relative paths, see the module doc; in
    production they become PostgreSQL tables of the same names)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    modules = _repo_modules()
    kinds = (Entity, DataSource, FeatureView, FeatureService)
    found: dict[int, object] = {}
    for module in modules.values():
        for value in vars(module).values():
            if isinstance(value, kinds):
                found.setdefault(id(value), value)
    if settings.profile == "production":
        from pipelines.features.offline import with_table_sources

        return with_table_sources(list(found.values()))
    return list(found.values())


def apply(settings: Settings) -> None:
    """Register every object of ``feature_repo/`` (like ``feast apply``); idempotent.

    Feature views and services that are registered but no longer defined are removed, as the CLI does.
    """
    from feast import Project

    store = get_store(settings)
    objects = definitions(settings)
    defined = {(type(o).__name__, o.name) for o in objects}
    registered = [*store.list_feature_views(), *store.list_feature_services()]
    stale = [o for o in registered if (type(o).__name__, o.name) not in defined]
    store.apply([Project(name=PROJECT), *objects], objects_to_delete=stale, partial=False)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def materialize(settings: Settings, end: datetime | None = None, features: Path | None = None) -> None:
    """Load each entity's newest snapshot at or before ``end`` into the online store, for every online view.

    However old that snapshot is, it is loaded: the online store serves the newest values a batch has (a batch
    imported long after its last day still serves), while training reads apply the views' TTLs. Idempotent:
    rerunning writes the same values.

    Args:
        settings: ShopFlow settings.
        end: Newest snapshot time to load; naive datetimes are UTC. Default: the newest snapshot there is. Snapshots
            are stamped at midnight *after* a batch's last day, which can be later than "now" for fresh data, so pass
            ``pipelines.features.build.snapshot_end(...)`` of the batch (or nothing) rather than the current time.
        features: Folder of feature files to load (the data pipeline passes the snapshot it is about to switch in);
            default: the snapshot ``CURRENT`` names, see :func:`pipelines.features.snapshot.features_root`.
    """
    features = features if features is not None else features_root(settings)
    store = get_store(settings, features)
    end = _utc(end) if end is not None else _newest_snapshot(features)
    if end is None:
        return  # every feature file is empty (a batch without customers' or products' history): nothing to load
    # Real-time views (a push source, e.g. the cart) are written by pushes, never loaded from snapshots.
    online = [view.name for view in store.list_feature_views() if view.online and view.stream_source is None]
    store.materialize(start_date=_EPOCH, end_date=end, feature_views=online)


def _newest_snapshot(features: Path) -> datetime | None:
    """Newest ``event_timestamp`` over the feature files (reads that one column only); ``None`` if all are empty."""
    newest = [
        pd.read_parquet(path, columns=["event_timestamp"])["event_timestamp"].max()
        for path in (feature_path(features, t) for t in FEATURE_TABLES)
        if path.exists()
    ]
    if not newest:
        raise FileNotFoundError(f"no feature files in {features}: build the features first")
    newest = [ts for ts in newest if pd.notna(ts)]  # a batch without e.g. customers has empty customer files
    return _utc(max(newest).to_pydatetime()) if newest else None


def feature_names(settings: Settings, service: str, store=None) -> list[str]:
    """Feature names of a registered feature service, in service order (view by view, schema order).

    Args:
        settings: ShopFlow settings.
        service: Feature service name, e.g. ``"churn_v1"``.
        store: An existing ``FeatureStore`` for ``settings`` to reuse (e.g. by a model server).
    """
    store = store or get_store(settings)
    return _names(store.get_feature_service(service))


def _names(service) -> list[str]:
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def _join_keys(store, service) -> list[str]:
    keys: list[str] = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        keys += [k for k in view.join_keys if k not in keys]
    return keys


def training_frame(settings: Settings, entity_df: pd.DataFrame, service: str, store=None) -> pd.DataFrame:
    """Point-in-time join of a feature service's features onto ``entity_df``.

    For each row Feast takes, per view, the newest snapshot with ``event_timestamp`` at or before the row's
    ``event_timestamp`` and within the view's TTL; snapshots only summarise data from before their own time, so
    nothing after the row's time can leak in.

    Args:
        settings: ShopFlow settings.
        entity_df: Join key columns (e.g. ``customer_id``), ``event_timestamp`` (UTC; naive = UTC) and any label
            columns, which are passed through.
        service: Feature service name, e.g. ``"churn_v1"``.
        store: An existing ``FeatureStore`` for ``settings`` to reuse.

    Returns:
        ``entity_df``'s columns (same rows, same order) followed by the service's features under their plain names;
        features are null where no snapshot lies within the TTL.
    """
    store = store or get_store(settings)
    fs = store.get_feature_service(service)
    keyed = entity_df.reset_index(drop=True).assign(_shopflow_row=lambda d: range(len(d)))
    keyed["event_timestamp"] = pd.to_datetime(keyed["event_timestamp"], utc=True)
    for key in _join_keys(store, fs):
        keyed[key] = keyed[key].astype(str)
    result = store.get_historical_features(entity_df=keyed, features=fs, full_feature_names=False).to_df()
    # Feast returns the rows in its own order, and each offline store its own types for the entity columns (the
    # PostgreSQL one hands timestamps back from the database): the entity columns come back as sent to Feast (UTC
    # timestamps, string keys), in the caller's order, whatever the store.
    names = _names(fs)
    found = result.set_index("_shopflow_row")[names].reindex(range(len(keyed)))
    return pd.concat([keyed[list(entity_df.columns)], found.reset_index(drop=True)], axis=1)


def service_plan(store, service: str) -> tuple[object, str, list[str]]:
    """``(FeatureService, join key, feature names)`` of a single-key service, resolved once per store object.

    A running server reads the same service for every request; resolving it from the registry each time costs
    more than the online read, and passing Feast the same ``FeatureService`` object lets it reuse its own
    request plan.

    Raises:
        ValueError: if the service's views join on more than one key.
    """
    cache = _PLANS.setdefault(store, {})
    if service not in cache:
        fs = store.get_feature_service(service)
        keys = _join_keys(store, fs)
        if len(keys) != 1:
            raise ValueError(f"feature service {service!r} joins on {keys}; online reads take one key")
        cache[service] = (fs, keys[0], _names(fs))
    return cache[service]


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def online_features(settings: Settings, ids: list[str], service: str, store=None) -> pd.DataFrame:
    """Latest materialised features for ``ids`` (one row per id, in order).

    Unknown ids (never materialised) come back with every feature null, so callers can report them.

    Args:
        settings: ShopFlow settings.
        ids: Values of the service's single join key (e.g. customer ids).
        service: Feature service name.
        store: An existing ``FeatureStore`` for ``settings`` to reuse (a server keeps one for its lifetime; the
            service's definition is then resolved once).

    Returns:
        The join key column followed by the service's features.

    Raises:
        ValueError: if the service's views join on more than one key.
    """
    store = store or get_store(settings)
    fs, key, names = service_plan(store, service)
    found = store.get_online_features(features=fs, entity_rows={key: [str(i) for i in ids]},
                                      full_feature_names=False).to_dict()
    # Straight from Feast's dict (no Arrow/pandas round trip per view); an all-null column stays numeric.
    frame = pd.DataFrame({key: found[key], **{n: found[n] for n in names}})
    for name in names:
        if frame[name].isna().all():
            frame[name] = frame[name].astype("float64")
    return frame
