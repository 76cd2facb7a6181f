"""Thin KFP components over :mod:`pipelines.steps`: each imports ShopFlow inside the pod and calls one step.

The functions are shipped as source into the compiled pipeline (KFP lightweight components), so they import
everything inside their bodies. They run on the ShopFlow image (``install_kfp_package=False``: the image already has
kfp and ShopFlow, so no package index is needed in the pod); settings come from the pod's environment.
"""


from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Output


def validate(batch_id: str) -> str:
    """Great Expectations gate; returns the accepted batch id (a quarantined batch fails the task)."""
    from pipelines import steps

    return steps.validate(batch_id or None)["batch_id"]


def build_features(batch_id: str) -> str:
    """The batch's feature snapshot, built aside; returns its id."""
    from pipelines import steps

    return steps.build_features(batch_id)


def apply_and_materialize(batch_id: str, snapshot_id: str) -> str:
    """`feast apply`, then the snapshot's newest values into the online store."""
    from pipelines import steps

    steps.apply_features()
    steps.materialize(batch_id, snapshot_id)
    return snapshot_id


def publish(batch_id: str, snapshot_id: str) -> str:
    """The switch: CURRENT := (batch, snapshot) in one write; returns the batch id."""
    from pipelines import steps

    return steps.publish(batch_id, snapshot_id)["batch_id"]


def train(model: str, batch_id: str, overrides_json: str, force: bool,
          metrics: Output[Metrics]) -> NamedTuple("TrainOutputs", [("version", str), ("summary_json", str)]):
    """Train on CURRENT (``batch_id`` orders it after the data steps) and register the challenger."""
    import json
    from collections import namedtuple

    from pipelines import steps

    summary = steps.train(model, json.loads(overrides_json or "{}"), force)
    for key, value in summary.get("metrics", {}).items():
        metrics.log_metric(key, float(value))
    for key, value in summary.get("baselines", {}).items():
        metrics.log_metric(f"baseline_{key}", float(value))
    metrics.metadata["candidate"] = summary.get("candidate", "model")
    return namedtuple("TrainOutputs", ["version", "summary_json"])(str(summary["version"]),
                                                                     json.dumps(summary, default=str))


def gate(model: str, version: str, overrides_json: str, metrics: Output[Metrics]) -> NamedTuple(
        "GateOutputs", [("promoted", bool), ("champion", str), ("reason", str)]):
    """The champion gate; the decision, the champion after it and the comparisons as outputs."""
    import json
    from collections import namedtuple

    from pipelines import steps

    out = steps.gate(model, version, json.loads(overrides_json or "{}"))
    decision = out["gate"]
    metrics.log_metric("challenger_score", float(decision["challenger_score"]))
    for comparison in decision.get("comparisons", []):
        metrics.log_metric(f"improvement_low_vs_{comparison['against'].replace(' ', '_')}", float(comparison["low"]))
    return namedtuple("GateOutputs", ["promoted", "champion", "reason"])(
        bool(decision["promoted"]), str(out["registry"].get("champion") or ""), decision["reason"])


def make(image: str):
    """The components on ``image`` (a namespace of KFP component objects)."""
    wrap = dsl.component(base_image=image, install_kfp_package=False)

    class Components:
        validate_op = wrap(validate)
        build_features_op = wrap(build_features)
        apply_and_materialize_op = wrap(apply_and_materialize)
        publish_op = wrap(publish)
        train_op = wrap(train)
        gate_op = wrap(gate)

    return Components
