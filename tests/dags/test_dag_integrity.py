"""DAG integrity: every DAG imports cleanly and follows the house rules (Astronomer-style)."""

from __future__ import annotations

import os

import pytest

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
    expected = {"shopflow_data"} | {f"shopflow_train_{name}" for name in load_registry()}
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
    """Each model DAG is scheduled on the Asset the data DAG's materialize task updates."""
    data = dagbag.dags["shopflow_data"]
    outlets = {a.uri for a in data.get_task("materialize").outlets}
    for name, spec in load_registry().items():
        dag = dagbag.dags[f"shopflow_train_{name}"]
        uris = {asset.uri for asset in dag.timetable.asset_condition.objects}
        assert uris and uris <= outlets, name
        assert [t.task_id for t in dag.topological_sort()] == ["train", "evaluate_and_promote"]


def test_library_never_imports_airflow():
    import pathlib
    import re

    import pipelines

    root = pathlib.Path(pipelines.__file__).parent
    offenders = [p.name for p in root.rglob("*.py") if re.search(r"^\s*(from|import) airflow", p.read_text(), re.M)]
    assert offenders == []


def test_a_new_spec_module_gets_a_dag_and_the_house_rules(tmp_path, monkeypatch):
    """A seventh family is one new module: its DAG appears with retries, tags and its asset schedule."""
    import sys
    import textwrap

    from airflow.dag_processing.dagbag import DagBag

    from pipelines import models, registry

    (tmp_path / "toy.py").write_text(textwrap.dedent("""
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
        assert {a.uri for a in dag.timetable.asset_condition.objects} == {"shopflow://features/toy_v1"}
        outlets = {a.uri for a in bag.dags["shopflow_data"].get_task("materialize").outlets}
        assert "shopflow://features/toy_v1" in outlets
    finally:
        sys.modules.pop("pipelines.models.toy", None)
        registry.load_registry.cache_clear()
