"""An experiment created under one artifact root never sends the next runs there once the root changed (issue 10:
a trial kept a stale ``s3://`` location in PostgreSQL and failed until the experiment was deleted by hand)."""

from __future__ import annotations

import mlflow

from pipelines import tracking
from pipelines.settings import Settings


def test_changed_artifact_root_gets_a_new_experiment_and_keeps_the_old_runs(tmp_path):
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = Settings(home=tmp_path / "a", mlflow_tracking_uri=db)
    tracking.configure(first)
    old = tracking.experiment_for(first, "churn")
    with mlflow.start_run(experiment_id=old) as run:
        mlflow.log_metric("m", 1.0)
    assert tracking.experiment_for(first, "churn") == old  # same root: the same experiment

    moved = Settings(home=tmp_path / "b", mlflow_tracking_uri=db)  # another artifact root, same tracking store
    new = tracking.experiment_for(moved, "churn")
    assert new != old
    assert mlflow.get_experiment(new).artifact_location == f"{moved.artifact_location}/churn"
    assert mlflow.get_experiment(new).name == "shopflow-churn"
    renamed = mlflow.get_experiment(old)
    assert renamed.name.startswith("shopflow-churn@") and renamed.name.endswith("/a/mlartifacts")
    assert mlflow.MlflowClient(db).get_run(run.info.run_id).data.metrics["m"] == 1.0
    with mlflow.start_run(experiment_id=new) as run2:
        pass
    assert run2.info.artifact_uri.startswith(moved.artifact_location)

    # Back to the first root, then to the second again: each switch keeps the names unique.
    again = tracking.experiment_for(first, "churn")
    assert again not in (old, new)
    assert tracking.experiment_for(moved, "churn") not in (old, new, again)
