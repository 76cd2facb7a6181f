"""The training reference of a model version: a sample of the features it was trained on, stored with its run.

The reference is each entity's newest row in the feature snapshot the version was trained on, restricted to the
columns of the family's FeatureService: that is the state the online store served right after training, so it
compares like with like with the newest batch's newest rows and with the features served since. Which columns a
family uses comes from its ``ModelSpec.feature_service`` (read from ``feature_repo/``), so no family adds code.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.settings import Settings

log = logging.getLogger(__name__)

ARTIFACT_DIR = "monitoring"
ARTIFACT = f"{ARTIFACT_DIR}/reference.parquet"
TIME_COLUMN = "event_timestamp"


def service_columns(settings: Settings, feature_service: str) -> dict[str, str]:
    """``{feature: feature view}`` of a FeatureService as defined in ``feature_repo/`` (no registry needed)."""
    from feast import FeatureService

    from pipelines.features.store import definitions

    for obj in definitions(settings):
        if isinstance(obj, FeatureService) and obj.name == feature_service:
            return {f.name: p.name for p in obj.feature_view_projections for f in p.features}
    return {}


def newest_features(features_dir: Path, columns: dict[str, str]) -> pd.DataFrame:
    """Each entity's newest values of ``columns`` in a snapshot folder, one row per entity (index: its id).

    Views of one service share their entity (customer or product), so their newest rows join on its id.
    """
    from pipelines.features.build import feature_path

    parts = []
    for view in dict.fromkeys(columns.values()):
        path = feature_path(features_dir, view)
        if not path.exists():
            continue
        table = pd.read_parquet(path)
        if table.empty or TIME_COLUMN not in table:
            continue
        wanted = [c for c, v in columns.items() if v == view and c in table.columns]
        key = next(c for c in table.columns if c not in wanted and c != TIME_COLUMN and c != "created")
        newest = table[table[TIME_COLUMN] == table[TIME_COLUMN].max()]
        parts.append(newest.drop_duplicates(key, keep="last").set_index(key)[wanted])
    if not parts:
        return pd.DataFrame(columns=list(columns))
    frame = pd.concat(parts, axis=1, join="outer")
    frame.index = frame.index.astype(str)
    return frame


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, drawn without replacement with a seeded generator (order kept)."""
    if len(frame) <= rows:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    return frame.iloc[keep]


def snapshot_features(settings: Settings, snapshot: str, feature_service: str) -> pd.DataFrame:
    """Newest features of ``feature_service`` in feature snapshot ``snapshot``."""
    from pipelines.features.snapshot import snapshot_dir

    columns = service_columns(settings, feature_service)
    if not columns:
        return pd.DataFrame()
    return newest_features(snapshot_dir(settings, snapshot), columns)


def log_reference(settings: Settings, feature_service: str) -> int:
    """Log the training reference of the active MLflow run (the snapshot ``settings`` is pinned to); returns rows.

    Called by :func:`pipelines.training.train_model` inside its run, for every family alike.
    """
    import mlflow

    if not settings.feature_snapshot:
        return 0
    frame = sample(snapshot_features(settings, settings.feature_snapshot, feature_service),
                   settings.monitor.reference_rows, settings.seed)
    if frame.empty:
        log.info("no features of %s in snapshot %s: no monitoring reference", feature_service,
                 settings.feature_snapshot)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        frame.to_parquet(path)
        mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)
    return len(frame)


def load_reference(client, run_id: str) -> pd.DataFrame | None:
    """The reference logged with a training run, or ``None`` when the run has none (trained before monitoring)."""
    import mlflow

    names = {a.path for a in client.list_artifacts(run_id, ARTIFACT_DIR)}
    if ARTIFACT not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=tmp,
                                                    tracking_uri=client.tracking_uri)
        return pd.read_parquet(local)
