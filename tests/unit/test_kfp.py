"""KFP pipelines generated from the registry: compiled IR parses strictly as protobuf and says what it must."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.kubeflow.cli import KFP_DIR
from pipelines.kubeflow.pipelines import compile_all
from pipelines.registry import load_registry
from pipelines.settings import Settings

EXPECTED = ["data"] + [f"train_{name}" for name in load_registry()]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, tuple[pipeline_spec_pb2.PipelineSpec, pipeline_spec_pb2.PlatformSpec]]:
    out = tmp_path_factory.mktemp("kfp")
    specs = {}
    for path in compile_all(Settings(), out):
        pipeline_doc, platform_doc = yaml.safe_load_all(path.read_text())
        # Strict: an unknown field anywhere is an error, not silently dropped.
        specs[path.stem] = (json_format.ParseDict(pipeline_doc, pipeline_spec_pb2.PipelineSpec()),
                            json_format.ParseDict(platform_doc, pipeline_spec_pb2.PlatformSpec()))
    return specs


def test_one_data_and_one_training_pipeline_per_family(compiled) -> None:
    assert sorted(compiled) == sorted(EXPECTED)
    assert sorted(p.stem for p in KFP_DIR.glob("*.yaml")) == sorted(EXPECTED)


def test_committed_pipelines_are_current(tmp_path: Path) -> None:
    for path in compile_all(Settings(), tmp_path):
        assert path.read_text() == (KFP_DIR / path.name).read_text(), f"regenerate: shopflow kfp compile ({path.name})"


def _executors(spec: pipeline_spec_pb2.PipelineSpec) -> dict:
    return json_format.MessageToDict(spec.deployment_spec)["executors"]


def test_components_run_the_shopflow_image_and_call_the_shared_steps(compiled) -> None:
    image = Settings().kfp.image
    for spec, _ in compiled.values():
        for name, executor in _executors(spec).items():
            container = executor["container"]
            assert container["image"] == image, name
            script = "\n".join(container["command"] + container.get("args", []))
            assert "pip install" not in script, f"{name} installs packages in the pod"
            assert "from pipelines import steps" in script, f"{name} is not a thin wrapper over pipelines.steps"


def test_gpu_families_ask_for_an_accelerator_and_cpu_families_do_not(compiled) -> None:
    for name, spec in load_registry().items():
        train = _executors(compiled[f"train_{name}"][0])["exec-train"]["container"]
        accel = train.get("resources", {}).get("accelerator", {})
        if spec.resources.get("gpu"):
            assert accel.get("resourceType") == "nvidia.com/gpu" and accel.get("resourceCount") == "1", name
        else:
            assert not accel, name


def test_data_pipeline_order_and_training_inputs_and_outputs(compiled) -> None:
    data = compiled["data"][0]
    tasks = data.root.dag.tasks
    assert list(tasks["build-features"].dependent_tasks) == ["validate"]
    assert set(tasks["apply-and-materialize"].dependent_tasks) == {"validate", "build-features"}
    assert set(tasks["publish"].dependent_tasks) == {"validate", "apply-and-materialize"}
    for name in load_registry():
        spec = compiled[f"train_{name}"][0]
        assert set(spec.root.input_definitions.parameters) == {"batch_id", "overrides_json", "force"}
        assert list(spec.root.dag.tasks["gate"].dependent_tasks) == ["train"]
        train_outputs = spec.components["comp-train"].output_definitions
        assert {"version", "summary_json"} <= set(train_outputs.parameters)
        assert "metrics" in train_outputs.artifacts
        assert spec.pipeline_info.name == f"shopflow-train-{name}"


def test_every_task_runs_the_production_profile_with_the_secret(compiled) -> None:
    for stem, (spec, platform) in compiled.items():
        for name, executor in _executors(spec).items():
            env = {e["name"]: e.get("value") for e in executor["container"].get("env", [])}
            assert env.get("SHOPFLOW_PROFILE") == "production", (stem, name)
        k8s = json_format.MessageToDict(platform)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for name, executor in k8s.items():
            assert executor["secretAsEnv"][0]["secretName"] == Settings().kfp.secret, (stem, name)


class _RecordingClient:
    """Stands in for a KFP API server, which this machine does not have: records what would be submitted."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def create_run_from_pipeline_package(self, package, arguments, **kwargs):
        self.calls.append({"package": Path(package).read_text(), "arguments": arguments, **kwargs})
        return type("Result", (), {"run_id": "run-123"})()


def test_submit_sends_the_compiled_training_pipeline() -> None:
    from pipelines.kubeflow.submit import submit_training

    settings = Settings(kfp={"host": "http://kfp.example:8888", "backend": "kfp"})
    fake = _RecordingClient()
    run = submit_training(settings, "churn", "abc", {"max_depth": 3}, force=True, kfp_client=fake)
    assert run == {"run_id": "run-123", "url": "http://kfp.example:8888/#/runs/details/run-123"}
    call = fake.calls[0]
    assert call["arguments"] == {"batch_id": "abc", "overrides_json": '{"max_depth": 3}', "force": True}
    assert call["package"] == (KFP_DIR / "train_churn.yaml").read_text()
    assert call["experiment_name"] == "shopflow" and call["enable_caching"] is False


def test_submit_without_a_host_is_a_clear_error() -> None:
    from pipelines.errors import UserError
    from pipelines.kubeflow.submit import submit_training

    with pytest.raises(UserError, match="SHOPFLOW_KFP__HOST"):
        submit_training(Settings(), "churn", "")
