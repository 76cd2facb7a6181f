"""DAG integrity: every DAG imports cleanly and follows the house rules (Astronomer-style)."""

from __future__ import annotations

import os

import pytest

from pipelines.assets import retrain_asset_uri
from pipelines.orchestration import DAGS_FOLDER
from pipelines.registry import load_registry


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_training_dag_per_registered_model(dagbag):
    expected = {"shopflow_data", "shopflow_monitor"} | {f"shopflow_train_{name}" for name in load_registry()}
    assert expected <= set(dagbag.dag_ids)


def test_dags_have_retries_tags_docs(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert dag.default_args.get("retries", 0) >= 2, dag_id
        assert dag.tags and "shopflow" in dag.tags, dag_id
        assert dag.doc_md, dag_id


def test_validation_fails_fast_without_retries(dagbag):
    """Retrying cannot fix bad data: the validate task must not retry."""
    assert dagbag.dags["shopflow_data"].get_task("validate").retries == 0


def test_training_follows_fresh_features(dagbag):
    """Each model DAG is scheduled on the Asset the data DAG's last task (the switch of CURRENT) updates."""
    data = dagbag.dags["shopflow_data"]
    assert [t.task_id for t in data.topological_sort()] == ["validate", "build_features", "apply_feature_repo",
                                                           "materialize", "publish"]
    outlets = {a.uri for a in data.get_task("publish").outlets}
    for name, spec in load_registry().items():
        dag = dagbag.dags[f"shopflow_train_{name}"]
        uris = {asset.uri for asset in dag.timetable.asset_condition.objects}
        assert uris - {retrain_asset_uri(name)} and uris <= outlets | {retrain_asset_uri(name)}, name
        assert [t.task_id for t in dag.topological_sort()] == ["tune", "train", "evaluate_and_promote"]


def test_monitor_runs_after_each_accepted_batch_and_daily(dagbag):
    """The monitor follows the data DAG's switch of CURRENT (any feature Asset) and a daily cron; a breach fails
    `alert` without retry; each model's retrain task updates the Asset its training DAG is scheduled on."""
    dag = dagbag.dags["shopflow_monitor"]
    outlets = {a.uri for a in dagbag.dags["shopflow_data"].get_task("publish").outlets}
    assert {a.uri for a in dag.timetable.asset_condition.objects} == outlets
    assert "0 0 * * *" in dag.timetable.summary or "00:00" in dag.timetable.description
    assert dag.get_task("alert").retries == 0
    assert dag.get_task("alert").upstream_task_ids == {"monitor"}
    for name in load_registry():
        retrain = dag.get_task(f"retrain_{name}")
        assert {a.uri for a in retrain.outlets} == {retrain_asset_uri(name)}
        train = dagbag.dags[f"shopflow_train_{name}"]
        assert retrain_asset_uri(name) in {a.uri for a in train.timetable.asset_condition.objects}


def test_library_never_imports_airflow():
    import pathlib
    import re

    import pipelines

    root = pathlib.Path(pipelines.__file__).parent
    offenders = [p.name for p in root.rglob("*.py") if re.search(r"^\s*(from|import) airflow", p.read_text(), re.M)]
    assert offenders == []


def test_a_new_spec_package_gets_a_dag_and_the_house_rules(tmp_path, monkeypatch):
    """A seventh family is one new package: its DAG appears with retries, tags and its asset schedule."""
    import sys
    import textwrap

    from airflow.dag_processing.dagbag import DagBag

    from pipelines import models, registry

    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text(textwrap.dedent("""
        from pipelines.spec import ModelParams, ModelSpec
        class ToyParams(ModelParams):
            k: int = 1
        SPEC = ModelSpec(name="toy", params=ToyParams, feature_service="toy_v1", primary_metric="mae",
                         higher_is_better=False, prepare=None, fit=None, evaluate=None, score=None,
                         log_model=None, load_model=None, description="A toy family.")
    """))
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
    registry.load_registry.cache_clear()
    try:
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        assert bag.import_errors == {}
        dag = bag.dags["shopflow_train_toy"]
        assert dag.default_args["retries"] >= 2 and "toy" in dag.tags and dag.doc_md
        assert {a.uri for a in dag.timetable.asset_condition.objects} == {"shopflow://features/toy_v1",
                                                                          retrain_asset_uri("toy")}
        outlets = {a.uri for a in bag.dags["shopflow_data"].get_task("publish").outlets}
        assert "shopflow://features/toy_v1" in outlets
    finally:
        sys.modules.pop("pipelines.models.toy", None)
        registry.load_registry.cache_clear()


@pytest.mark.parametrize("hostile", ["..", "../data", "/some/dir", "a/b", ""])
def test_data_dag_refuses_a_batch_id_that_is_a_path(dagbag, hostile):
    """The `batch_id` param reaches the gate: a path is refused when the run is triggered, before any task."""
    from airflow.sdk.definitions.param import ParamValidationError

    param = dagbag.dags["shopflow_data"].params.get_param("batch_id")
    with pytest.raises(ParamValidationError):
        param.resolve(hostile)
    assert param.resolve("25c217eb51a7c139") == "25c217eb51a7c139" and param.resolve(None) is None


def _training_dags_with(monkeypatch, **env: str):
    """Every training DAG as parsed under the given ``SHOPFLOW_*`` settings (the DAG file reads them at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.settings import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
    finally:
        get_settings.cache_clear()
    assert bag.import_errors == {}
    return [bag.dags[f"shopflow_train_{name}"] for name in load_registry()]


def test_kfp_backend_submits_and_waits_without_holding_a_slot(monkeypatch):
    """SHOPFLOW_KFP__BACKEND=kfp: the training DAG submits the compiled pipeline, then a reschedule-mode sensor."""
    for dag in _training_dags_with(monkeypatch, SHOPFLOW_KFP__BACKEND="kfp"):
        assert {t.task_id for t in dag.tasks} == {"submit_to_kfp", "wait_for_kfp"}
        wait = dag.get_task("wait_for_kfp")
        assert wait.mode == "reschedule" and wait.upstream_task_ids == {"submit_to_kfp"}


def test_approve_mode_parks_a_winner_at_a_human_in_the_loop_task(monkeypatch):
    """SHOPFLOW_PROMOTION=approve: gate -> (only a version the gate would promote) Airflow's HITL task with the
    gate's evidence -> the answer is recorded; nothing is retried."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    for dag in _training_dags_with(monkeypatch, SHOPFLOW_PROMOTION="approve"):
        ask = dag.get_task("approve_promotion")
        assert isinstance(ask, HITLOperator) and ask.options == ["Approve", "Reject"] and ask.retries == 0
        assert "gate" in ask.body and "reason" in ask.params
        assert ask.upstream_task_ids == {"awaits_approval"}
        assert dag.get_task("awaits_approval").upstream_task_ids == {"evaluate_and_promote"}
        assert dag.get_task("record_approval").upstream_task_ids == {"approve_promotion", "evaluate_and_promote"}
