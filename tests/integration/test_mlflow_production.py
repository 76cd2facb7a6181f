"""Production profile, for real: MLflow tracking + registry on the local PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import tracking
from pipelines.settings import Settings
from tests.conftest import throwaway_postgres

pytestmark = pytest.mark.production


@pytest.fixture
def pg_database():
    with throwaway_postgres() as uri:
        yield uri


def test_mlflow_registry_on_postgres_round_trip(pg_database, tmp_path, monkeypatch):
    import mlflow
    import xgboost as xgb

    s = Settings(home=tmp_path, profile="production",
                 production={"postgres_uri": pg_database, "artifact_uri": (tmp_path / "objstore").as_uri()})
    assert s.tracking_uri.startswith("postgresql://")
    client = tracking.configure(s)
    exp_id = tracking.experiment_for(s, "churn")
    assert mlflow.get_experiment(exp_id).artifact_location.startswith((tmp_path / "objstore").as_uri())

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((200, 3)), columns=["recency_days", "frequency_90d", "monetary_90d"])
    y = (X["recency_days"] > 0.5).astype(int)
    model = xgb.XGBClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_params({"max_depth": 2})
        mlflow.log_metric("auc", 0.91)
        info = mlflow.xgboost.log_model(model, name="model", input_example=X.head(2))
    mv = mlflow.register_model(info.model_uri, "churn", tags={"shopflow.fingerprint": "abc"})
    client.set_registered_model_alias("churn", tracking.CHAMPION, mv.version)

    # Read everything back through a fresh client: it really lives in PostgreSQL.
    fresh = mlflow.MlflowClient(tracking_uri=pg_database, registry_uri=pg_database)
    assert fresh.get_run(run.info.run_id).data.metrics["auc"] == pytest.approx(0.91)
    assert tracking.version_by_alias(fresh, "churn", tracking.CHAMPION).version == mv.version
    assert tracking.find_version_by_fingerprint(fresh, "churn", "abc").version == mv.version
    loaded = mlflow.xgboost.load_model(f"models:/churn@{tracking.CHAMPION}")
    np.testing.assert_allclose(loaded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])

    import psycopg2

    with psycopg2.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM registered_models")
        assert cur.fetchall() == [("churn",)]
