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
