"""KFP pipelines generated from the registry: the data pipeline and one training pipeline per family.

``data``: validate -> build the feature snapshot -> apply + materialize -> publish (the switch of CURRENT; a quarantined
batch fails the first step and nothing else runs). ``train_<model>``: train -> gate, with the metrics and the registered version as outputs. GPU families
ask for an accelerator. Every component gets the ShopFlow settings from the pod's environment: the non-secret
ones baked in at compile time (the production profile), the rest from a Kubernetes Secret (``settings.kfp.secret``).
"""


import json
from pathlib import Path
from typing import Any, Callable

from pipelines.settings import PRODUCTION_SECRET_KEYS as SECRET_KEYS
from pipelines.settings import Settings


def _configure(task, settings: Settings, gpu: bool = False, cluster: bool = True):
    """Environment and resources of one task. In a cluster a task runs the production profile with the store
    locations and keys from the Secret; run locally it inherits this process's environment (and KFP's local runner
    ignores resource requests)."""
    task.set_caching_options(False)  # steps are idempotent themselves (content ids, fingerprints)
    if cluster:
        from kfp import kubernetes

        task.set_env_variable("SHOPFLOW_PROFILE", "production")
        kubernetes.use_secret_as_env(task, secret_name=settings.kfp.secret,
                                     secret_key_to_env={k: k for k in SECRET_KEYS}, optional=True)
    if gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    return task


def data_pipeline(settings: Settings, cluster: bool = True) -> Callable:
    """The data pipeline (validate -> features) as a KFP pipeline function."""
    from kfp import dsl

    from pipelines.kubeflow.components import make

    ops = make(settings.kfp.image)

    @dsl.pipeline(name="shopflow-data", description="Great Expectations gate, then the batch's Feast feature "
                                                    "snapshot built aside, materialised, and switched in.")
    def shopflow_data(batch_id: str = "") -> str:
        checked = _configure(ops.validate_op(batch_id=batch_id), settings, cluster=cluster)
        built = _configure(ops.build_features_op(batch_id=checked.output), settings, cluster=cluster)
        served = _configure(ops.apply_and_materialize_op(batch_id=checked.output, snapshot_id=built.output),
                            settings, cluster=cluster)
        switched = _configure(ops.publish_op(batch_id=checked.output, snapshot_id=served.output), settings,
                              cluster=cluster)
        return switched.output

    return shopflow_data


def training_pipeline(settings: Settings, model: str, cluster: bool = True) -> Callable:
    """The training pipeline of one family (train -> gate) as a KFP pipeline function."""
    from kfp import dsl

    from pipelines.kubeflow.components import make
    from pipelines.registry import get_spec

    spec = get_spec(model)
    ops = make(settings.kfp.image)
    gpu = bool(spec.resources.get("gpu"))

    @dsl.pipeline(name=f"shopflow-train-{spec.name}",
                  description=f"Train {spec.name} on the current batch, register it, then the champion gate.")
    def shopflow_train(batch_id: str = "", overrides_json: str = "{}", force: bool = False) -> str:
        trained = _configure(ops.train_op(model=spec.name, batch_id=batch_id, overrides_json=overrides_json,
                                          force=force), settings, gpu=gpu, cluster=cluster)
        gated = _configure(ops.gate_op(model=spec.name, version=trained.outputs["version"],
                                       overrides_json=overrides_json), settings, cluster=cluster)
        return gated.outputs["champion"]

    return shopflow_train


def all_pipelines(settings: Settings, cluster: bool = True) -> dict[str, Callable]:
    """``{file stem: pipeline}``: ``data`` and ``train_<model>`` for every registered family."""
    from pipelines.registry import load_registry

    out = {"data": data_pipeline(settings, cluster)}
    out.update({f"train_{name}": training_pipeline(settings, name, cluster) for name in load_registry()})
    return out


def compile_all(settings: Settings, out_dir: Path) -> list[Path]:
    """Compile every pipeline to ``<out_dir>/<name>.yaml`` (KFP IR); returns the files written."""
    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in all_pipelines(settings).items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    return written


def run_local(settings: Settings, model: str, batch_id: str = "", overrides: dict[str, Any] | None = None,
              force: bool = False) -> dict[str, Any]:
    """Run the data pipeline, then ``model``'s training pipeline, for real with KFP's local runner.

    Components run as subprocesses of this Python (``SubprocessRunner(use_venv=False)``: the installed ShopFlow, no
    package index) with this process's environment; task outputs land under ``<home>/kfp``.

    Returns:
        The accepted batch id and the champion after the gate.
    """
    from kfp import local

    root = settings.home / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    batch = data_pipeline(settings, cluster=False)(batch_id=batch_id).output
    champion = training_pipeline(settings, model, cluster=False)(
        batch_id=batch, overrides_json=json.dumps(overrides or {}), force=force).output
    return {"batch_id": batch, "model": model, "champion": champion or None, "pipeline_root": str(root)}
