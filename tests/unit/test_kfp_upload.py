"""``shopflow kfp upload``: which pipelines and versions it sends, idempotently, and a one-line error when the KFP API
does not answer. No KFP server exists here: a recording stand-in keeps the server's state (pipelines and their
version names) for the idempotency tests; the unreachable-host tests use the real ``kfp.Client``.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipelines.errors import UserError
from pipelines.kubeflow import upload
from pipelines.kubeflow.cli import KFP_DIR
from pipelines.kubeflow.submit import KfpUnreachable, client
from pipelines.settings import Settings


class _Server:
    """Stands in for a KFP API server: pipelines by name, the version names of each; records every upload."""

    def __init__(self) -> None:
        self.pipelines: dict[str, str] = {}
        self.versions: dict[str, list[str]] = {}
        self.uploads: list[tuple[str, str, str]] = []

    def get_pipeline_id(self, name):
        return self.pipelines.get(name)

    def upload_pipeline(self, package, pipeline_name, description=None):
        pid = f"id-{pipeline_name}"
        self.pipelines[pipeline_name], self.versions[pid] = pid, [pipeline_name]  # KFP's first version
        self.uploads.append(("pipeline", pipeline_name, Path(package).read_text()))
        return SimpleNamespace(pipeline_id=pid)

    def list_pipeline_versions(self, pipeline_id, page_size, filter):
        import json

        wanted = json.loads(filter)["predicates"][0]["stringValue"]
        return SimpleNamespace(pipeline_versions=[v for v in self.versions[pipeline_id] if v == wanted] or None)

    def upload_pipeline_version(self, package, version, pipeline_id):
        self.versions[pipeline_id].append(version)
        self.uploads.append(("version", version, Path(package).read_text()))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upload_creates_then_skips_unchanged_then_versions_a_changed_pipeline(tmp_path):
    folder = tmp_path / "kfp"
    shutil.copytree(KFP_DIR, folder)
    server = _Server()
    first = upload.upload_all(Settings(), folder, kfp_client=server)
    committed = sorted(KFP_DIR.glob("*.yaml"))
    assert [r["action"] for r in first] == ["created"] * len(committed)
    assert {r["pipeline"] for r in first} == {"shopflow-data"} | {f"shopflow-train-{p.stem[6:]}" for p in committed
                                                                 if p.stem != "data"}
    assert sorted(text for kind, _, text in server.uploads if kind == "pipeline") == sorted(
        p.read_text() for p in committed)  # the committed IR, byte for byte
    again = upload.upload_all(Settings(), folder, kfp_client=server)
    assert [r["action"] for r in again] == ["unchanged"] * len(committed)
    assert len(server.uploads) == 2 * len(committed)  # nothing sent the second time

    churn = folder / "train_churn.yaml"
    churn.write_text(churn.read_text().replace("Train churn", "Train churn (edited)"))
    third = {r["pipeline"]: r for r in upload.upload_all(Settings(), folder, kfp_client=server)}
    assert third["shopflow-train-churn"]["action"] == "new version"
    assert third["shopflow-train-churn"]["version"] == upload.version_name(churn, third["shopflow-data"]["version"]
                                                                           .split("-")[0])
    assert {r["action"] for n, r in third.items() if n != "shopflow-train-churn"} == {"unchanged"}


def test_version_names_follow_the_package_version_and_the_content(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("pipelineInfo: {name: x}\n")
    b.write_text("pipelineInfo: {name: x}\n")
    assert upload.version_name(a, "0.1.0") == upload.version_name(b, "0.1.0")
    assert upload.version_name(a, "0.1.0").startswith("0.1.0-") and len(upload.version_name(a, "0.1.0")) == 18
    b.write_text("pipelineInfo: {name: y}\n")
    assert upload.version_name(a, "0.1.0") != upload.version_name(b, "0.1.0")


def test_a_file_that_is_not_a_pipeline_stops_the_upload_before_any_request(tmp_path):
    shutil.copy(KFP_DIR / "data.yaml", tmp_path)
    (tmp_path / "notes.yaml").write_text("just: notes\n")
    server = _Server()
    with pytest.raises(UserError, match=r"notes.yaml is not a compiled KFP pipeline"):
        upload.upload_all(Settings(), tmp_path, kfp_client=server)
    assert server.uploads == []
    with pytest.raises(UserError, match="no compiled pipelines"):
        upload.upload_all(Settings(), tmp_path / "empty", kfp_client=server)


def test_an_unreachable_kfp_api_is_one_line_naming_the_host():
    host = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(KfpUnreachable) as err:
        client(Settings(kfp={"host": host}))
    assert str(err.value).startswith(f"cannot reach the KFP API at {host}: ") and "\n" not in str(err.value)


def test_cli_upload_runs_the_jobs_command_and_fails_in_one_line(monkeypatch):
    from pipelines.cli import app

    host = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("SHOPFLOW_KFP__HOST", host)
    # The platform Job's exact command: compile for this image, then upload.
    res = CliRunner().invoke(app, ["kfp", "upload", "--compile"])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the KFP API at {host}: "), res.output
