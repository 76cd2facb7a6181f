"""Kubernetes manifests of the platform: MLflow tracking server, Airflow 3 on the KubernetesExecutor, and the Job
that uploads the compiled KFP pipelines. Every pod runs the platform image of ``./Dockerfile``.

Rendered like the model servers (:mod:`pipelines.deploy.k8s`): a Kustomize tree ``k8s/platform/base`` +
``k8s/platform/overlays/{local,production}`` written by :func:`render_tree` and committed, a direct Python render
per overlay (:func:`render_objects`) that tests require to equal the real Kustomize build, and offline validation
(:func:`check_objects`) that adds the platform's own cross-references to the serving checks: RBAC, and the
KubernetesExecutor pod template (a YAML document inside a ConfigMap) validated as a Pod.

No Helm: the objects are few and plain, and rendering them here lets one test suite check all of them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import yaml

from pipelines.deploy import k8s
from pipelines.settings import KfpSettings

NAMESPACE = "shopflow-platform"
"""Namespace of the platform: Airflow, MLflow and their dependencies (PostgreSQL, Redis, MinIO: k8s/dependencies)."""
IMAGE = "shopflow"
"""Image name in the base; overlays set registry and tag (Kustomize ``images``), the pod template gets the same."""
UID = 50000
"""The ``shopflow`` user of ./Dockerfile (group 0)."""
AIRFLOW_SECRET = "shopflow-airflow"
"""Airflow's own secrets (metadata DB URIs, Fernet key, API secret key, JWT secret); only Airflow servers read it."""
AIRFLOW_SECRET_KEYS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
                       "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET")
AIRFLOW_SECRET_FILE = "shopflow-airflow.env.example"
_LOCAL_DB = k8s.LOCAL_SECRET_VALUES["SHOPFLOW_PRODUCTION__AIRFLOW_URI"].partition("://")[2]
LOCAL_AIRFLOW_VALUES = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql://{_LOCAL_DB}",
    # Airflow 3 also opens an async engine; psycopg 3 (installed) serves both, asyncpg is not installed.
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg://{_LOCAL_DB}",
    "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(b"local-dev-fernet-key-not-secret!").decode(),
    "AIRFLOW__API__SECRET_KEY": "local-dev-api-secret-key-not-secret",
    "AIRFLOW__API_AUTH__JWT_SECRET": "local-dev-jwt-secret-not-secret",
}
CONFIG_NAME = "shopflow-platform-config"
POD_TEMPLATE_CONFIG = "airflow-pod-template"
POD_TEMPLATE_DIR = "/opt/airflow/pod-template"
POD_TEMPLATE_KEY = "pod_template.yaml"
SERVICE_ACCOUNT = "shopflow-platform"
"""Pods that never call the Kubernetes API: MLflow, Airflow's api-server/dag-processor/triggerer, task pods, Jobs."""
SCHEDULER_ACCOUNT = "airflow-scheduler"
"""The KubernetesExecutor runs in the scheduler: it creates, watches and deletes the task pods."""
API_PORT, MLFLOW_PORT, SCHEDULER_HEALTH_PORT = 8080, 5000, 8974
KFP_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
"""KFP API Service of a standalone Kubeflow Pipelines install (namespace ``kubeflow``)."""
EXTERNAL_SECRETS = frozenset({k8s.SECRET_NAME, AIRFLOW_SECRET})
"""Created out of band in production (docs/deploy.md); the local overlay generates both from fake values."""
PROBES = {"readinessProbe": None, "livenessProbe": None}
"""Every platform server needs both probes: httpGet where it serves HTTP, else an exec check."""
HEADER = k8s.HEADER.replace("from the model registry (pipelines/deploy/k8s.py)", "(pipelines/deploy/platform.py)")


@dataclass(frozen=True)
class Overlay:
    name: str
    namespace: str | None
    image: str
    local_secret: bool = False


BASE = Overlay("base", None, f"{IMAGE}:latest")


def overlays() -> dict[str, Overlay]:
    """``local`` (kind: image ``shopflow:dev``, fake Secrets generated) and ``production`` (the KFP image)."""
    return {"local": Overlay("local", NAMESPACE, f"{IMAGE}:dev", local_secret=True),
            "production": Overlay("production", NAMESPACE, KfpSettings().image)}


# ------------------------------------------------------------------------------------------------ pieces
def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "shopflow"}


def _res(cpu: str, mem: str, cpu_max: str, mem_max: str) -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": cpu_max, "memory": mem_max}}


def _http_probe(path: str, port: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 10,
            "failureThreshold": failures}


def _exec_probe(command: list[str]) -> dict[str, Any]:
    # Python + Airflow import take seconds: a slow period and a generous timeout (as the official chart does).
    return {"exec": {"command": command}, "periodSeconds": 60, "timeoutSeconds": 30, "failureThreshold": 5}


def _airflow(*args: str) -> list[str]:
    return ["airflow", *args]


def container(name: str, ov: Overlay, command: list[str], resources: dict[str, Any], *, ports: Iterable = (),
              env: Iterable[dict] = (), env_from: Iterable[str] = (), secrets: Iterable[str] = (),
              mounts: Iterable[dict] = (), probes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A hardened container of the platform image: non-root, no capabilities, read-only root with ``/tmp``."""
    c: dict[str, Any] = {"name": name, "image": ov.image, "imagePullPolicy": "IfNotPresent", "command": command}
    if ports:
        c["ports"] = [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports]
    c["env"] = [{"name": "SHOPFLOW_PROFILE", "value": "production"}, *env]
    c["envFrom"] = ([{"configMapRef": {"name": n}} for n in env_from]
                    + [{"secretRef": {"name": n}} for n in secrets])
    c["resources"] = resources
    c.update(probes or {})
    c["securityContext"] = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}}
    c["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *mounts]
    return c


def pod_spec(containers: list[dict], account: str = SERVICE_ACCOUNT, *, init: Iterable[dict] = (),
             volumes: Iterable[dict] = (), restart: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceAccountName": account, "automountServiceAccountToken": account != SERVICE_ACCOUNT,
                            "enableServiceLinks": False}
    if restart:
        spec["restartPolicy"] = restart
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": 0, "fsGroup": 0,
                               "seccompProfile": {"type": "RuntimeDefault"}}
    if init:
        spec["initContainers"] = list(init)
    spec["containers"] = containers
    spec["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}, *volumes]
    return spec


def deployment(name: str, component: str, pod: dict[str, Any], ov: Overlay, replicas: int = 1) -> dict[str, Any]:
    labels = _labels(name, component)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": k8s._meta(name, ov, labels),
            "spec": {"replicas": replicas, "revisionHistoryLimit": 5,
                     "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def service(name: str, component: str, port: int, ov: Overlay) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": k8s._meta(name, ov, _labels(name, component)),
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                     "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}}


def job(name: str, component: str, pod: dict[str, Any], ov: Overlay) -> dict[str, Any]:
    """A run-to-completion Job; it deletes itself an hour after finishing so the next ``kubectl apply`` (e.g. with a
    new image) creates it again instead of failing on an immutable pod template."""
    labels = _labels(name, component)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": k8s._meta(name, ov, labels),
            "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 3600,
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def _secret_env(name: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": k8s.SECRET_NAME, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


# ------------------------------------------------------------------------------------------------ MLflow
def mlflow_objects(ov: Overlay) -> list[dict[str, Any]]:
    """``mlflow server`` on PostgreSQL with artifacts on S3: the UI and HTTP access for remote clients (ShopFlow's
    own code talks to PostgreSQL and S3 directly, the same stores)."""
    env = [_secret_env("MLFLOW_BACKEND_STORE_URI", "SHOPFLOW_PRODUCTION__POSTGRES_URI"),
           _secret_env("MLFLOW_DEFAULT_ARTIFACT_ROOT", "SHOPFLOW_PRODUCTION__ARTIFACT_URI"),
           _secret_env("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
           _secret_env("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
           _secret_env("MLFLOW_S3_ENDPOINT_URL", "SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL", optional=True)]
    command = ["mlflow", "server", "--host", "0.0.0.0", "--port", str(MLFLOW_PORT), "--workers", "2",
               "--backend-store-uri", "$(MLFLOW_BACKEND_STORE_URI)",
               "--default-artifact-root", "$(MLFLOW_DEFAULT_ARTIFACT_ROOT)",
               # Artifacts go to S3 from the clients with their own credentials; the server only reads for the UI.
               "--no-serve-artifacts",
               # In-cluster names (any namespace) and port-forwards; /health is exempt (probes use the pod IP).
               "--allowed-hosts", "mlflow,mlflow:*,mlflow.*,localhost:*,127.0.0.1:*"]
    c = container("mlflow", ov, command, _res("250m", "1Gi", "2", "2Gi"), ports=[("http", MLFLOW_PORT)], env=env,
                  probes={"readinessProbe": _http_probe("/health", "http", 10, 3),
                          "livenessProbe": _http_probe("/health", "http", 20, 3)})
    return [deployment("mlflow", "tracking-server", pod_spec([c]), ov),
            service("mlflow", "tracking-server", MLFLOW_PORT, ov)]


# ------------------------------------------------------------------------------------------------ Airflow
def airflow_config() -> dict[str, str]:
    """Airflow's configuration as environment (``AIRFLOW__SECTION__KEY``), shared by its servers and task pods,
    plus the ShopFlow settings of the ``kfp`` training backend."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Task pods report to the API server (Airflow 3: workers never touch the metadata database).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://airflow-api-server:{API_PORT}/execution/",
        "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": f"{POD_TEMPLATE_DIR}/{POD_TEMPLATE_KEY}",
        "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS": "True",
        "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS_ON_FAILURE": "False",  # keep them to read the logs
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(SCHEDULER_HEALTH_PORT),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "SHOPFLOW_KFP__BACKEND": "kfp",  # heavy training runs as KFP pipelines; "inprocess" trains in the task pod
        "SHOPFLOW_KFP__HOST": KFP_HOST,
    }


def _kfp_image_config(ov: Overlay) -> dict[str, str]:
    return {"SHOPFLOW_KFP__IMAGE": ov.image}


def pod_template(ov: Overlay) -> dict[str, Any]:
    """The KubernetesExecutor's pod of one task: the platform image, the production profile, the same Secret as the
    model servers. The executor fills in the command and its labels; the container must be called ``base``."""
    c = container("base", ov, [], _res("500m", "2Gi", "2", "8Gi"), env_from=[CONFIG_NAME], secrets=[k8s.SECRET_NAME])
    del c["command"]  # set by the executor
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "shopflow-task", "labels": _labels("airflow-task", "worker")},
            "spec": pod_spec([c], restart="Never")}


def _airflow_container(name: str, ov: Overlay, args: list[str], resources: dict, **kw: Any) -> dict[str, Any]:
    return container(name, ov, _airflow(*args), resources, env_from=[CONFIG_NAME],
                     secrets=[k8s.SECRET_NAME, AIRFLOW_SECRET], **kw)


def _wait_for_migrations(ov: Overlay) -> dict[str, Any]:
    return _airflow_container("wait-for-migrations", ov, ["db", "check-migrations", "--migration-wait-timeout",
                                                          "600"], _res("100m", "512Mi", "1", "1Gi"))


def _airflow_server(name: str, component: str, args: list[str], ov: Overlay, probes: dict[str, Any],
                    port: tuple[str, int] | None = None) -> dict[str, Any]:
    c = _airflow_container(name, ov, args, _res("250m", "1Gi", "2", "2Gi"), probes=probes,
                           ports=[port] if port else ())
    return deployment(name, component, pod_spec([c], init=[_wait_for_migrations(ov)]), ov)


def airflow_objects(ov: Overlay) -> list[dict[str, Any]]:
    """api-server (UI, REST and execution API), scheduler (with the KubernetesExecutor), dag-processor and
    triggerer, the ``db migrate`` Job, RBAC for the executor, and the task pod template."""
    template_volume = {"name": "pod-template", "configMap": {"name": POD_TEMPLATE_CONFIG}}
    template_mount = {"name": "pod-template", "mountPath": POD_TEMPLATE_DIR, "readOnly": True}

    def job_probes(job_type: str) -> dict[str, Any]:
        return {k: _exec_probe(_airflow("jobs", "check", "--job-type", job_type, "--local")) for k in PROBES}

    api = _airflow_server("airflow-api-server", "api-server", ["api-server", "--port", str(API_PORT)], ov,
                          {"readinessProbe": _http_probe("/api/v2/monitor/health", "http", 10, 3),
                           "livenessProbe": _http_probe("/api/v2/monitor/health", "http", 20, 5)},
                          port=("http", API_PORT))
    scheduler_c = _airflow_container(
        "airflow-scheduler", ov, ["scheduler"], _res("500m", "1Gi", "2", "4Gi"),
        ports=[("health", SCHEDULER_HEALTH_PORT)], mounts=[template_mount],
        # Task pods go to the scheduler's own namespace (the Role below is namespaced).
        env=[{"name": "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE",
              "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        probes={"readinessProbe": _http_probe("/health", "health", 20, 3),
                "livenessProbe": _http_probe("/health", "health", 30, 5)})
    scheduler = deployment("airflow-scheduler", "scheduler",
                           pod_spec([scheduler_c], SCHEDULER_ACCOUNT, init=[_wait_for_migrations(ov)],
                                    volumes=[template_volume]), ov)
    processor = _airflow_server("airflow-dag-processor", "dag-processor", ["dag-processor"], ov,
                                job_probes("DagProcessorJob"))
    triggerer = _airflow_server("airflow-triggerer", "triggerer", ["triggerer"], ov, job_probes("TriggererJob"))
    migrate = job("airflow-db-migrate", "db-migrate", pod_spec(
        [_airflow_container("migrate", ov, ["db", "migrate"], _res("250m", "512Mi", "1", "2Gi"))],
        restart="OnFailure"), ov)
    return [*rbac_objects(ov), airflow_config_map(ov), pod_template_config_map(ov), migrate, api,
            service("airflow-api-server", "api-server", API_PORT, ov), scheduler, processor, triggerer]


def rbac_objects(ov: Overlay) -> list[dict[str, Any]]:
    part_of = {"app.kubernetes.io/part-of": "shopflow"}
    rules = [{"apiGroups": [""], "resources": ["pods"],
              "verbs": ["create", "get", "list", "watch", "patch", "delete", "deletecollection"]},
             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]}]
    subject = {"kind": "ServiceAccount", "name": SCHEDULER_ACCOUNT}
    if ov.namespace:
        subject["namespace"] = ov.namespace
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": k8s._meta(SERVICE_ACCOUNT, ov, part_of),
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": k8s._meta(SCHEDULER_ACCOUNT, ov, part_of)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": k8s._meta("airflow-pod-launcher", ov, part_of), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": k8s._meta("airflow-pod-launcher", ov, part_of),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "airflow-pod-launcher"},
         "subjects": [subject]},
    ]


def airflow_config_map(ov: Overlay) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": k8s._meta(CONFIG_NAME, ov, {"app.kubernetes.io/part-of": "shopflow"}),
            "data": {**airflow_config(), **_kfp_image_config(ov)}}


def pod_template_config_map(ov: Overlay) -> dict[str, Any]:
    text = yaml.dump(pod_template(ov), Dumper=k8s._Dumper, sort_keys=False, default_flow_style=False)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": k8s._meta(POD_TEMPLATE_CONFIG, ov, {"app.kubernetes.io/part-of": "shopflow"}),
            "data": {POD_TEMPLATE_KEY: text}}


# ------------------------------------------------------------------------------------------------ KFP upload
def kfp_upload_objects(ov: Overlay) -> list[dict[str, Any]]:
    """Compile the pipelines for this cluster's image (``SHOPFLOW_KFP__IMAGE``) and upload them to the KFP API;
    idempotent (an unchanged pipeline is not uploaded twice), so it runs on every apply."""
    c = container("upload", ov, ["shopflow", "kfp", "upload", "--compile"], _res("100m", "512Mi", "1", "1Gi"),
                  env_from=[CONFIG_NAME], secrets=[k8s.SECRET_NAME])
    return [job("kfp-upload", "kfp-upload", pod_spec([c], restart="OnFailure"), ov)]


# ------------------------------------------------------------------------------------------------ render
def _namespace(ov: Overlay) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ov.namespace, "labels": {"app.kubernetes.io/part-of": "shopflow"}}}


def base_files(ov: Overlay = BASE) -> dict[str, list[dict[str, Any]]]:
    """``{file in base/: objects}``."""
    return {"mlflow.yaml": mlflow_objects(ov), "airflow.yaml": airflow_objects(ov),
            "kfp-upload.yaml": kfp_upload_objects(ov)}


def render_objects(overlay: str) -> list[dict[str, Any]]:
    """The final objects of ``overlay`` (``base``, ``local`` or ``production``), built directly in Python.

    Raises:
        KeyError: naming the known overlays when ``overlay`` is not one of them.
    """
    known = {"base": BASE, **overlays()}
    if overlay not in known:
        raise KeyError(f"unknown platform overlay {overlay!r}; known: {', '.join(known)}")
    ov = known[overlay]
    objs = [o for group in base_files(ov).values() for o in group]
    if ov.namespace:
        objs.insert(0, _namespace(ov))
    if ov.local_secret:
        objs += [k8s.local_secret(ov), k8s.local_secret(ov, AIRFLOW_SECRET, LOCAL_AIRFLOW_VALUES)]
    return objs


def _dump(objs: Iterable[dict[str, Any]]) -> str:
    return HEADER + "---\n".join(yaml.dump(o, Dumper=k8s._Dumper, sort_keys=False, default_flow_style=False)
                                  for o in objs)


def _overlay_files(ov: Overlay) -> dict[str, str]:
    name, _, tag = ov.image.rpartition(":")
    files = {"namespace.yaml": _dump([_namespace(ov)]),
             # Kustomize's `images` does not reach the image inside the pod template (a string in a ConfigMap),
             # nor the KFP image setting: both are patched with this overlay's image.
             "patch-pod-template.yaml": _dump([pod_template_config_map(Overlay(ov.name, None, ov.image))]),
             "patch-config.yaml": _dump([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_NAME},
                                          "data": _kfp_image_config(ov)}])}
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": ov.namespace,
        "resources": ["../../base", "namespace.yaml"],
        "images": [{"name": IMAGE, **({"newName": name} if name != IMAGE else {}), "newTag": tag}],
        "patches": [{"path": "patch-pod-template.yaml"}, {"path": "patch-config.yaml"}],
    }
    if ov.local_secret:
        files[k8s.LOCAL_SECRET_FILE] = k8s.local_env_file()
        files[AIRFLOW_SECRET_FILE] = k8s.local_env_file(LOCAL_AIRFLOW_VALUES)
        generated = [k8s.secret_generator(n, f)["secretGenerator"][0]
                     for n, f in ((k8s.SECRET_NAME, k8s.LOCAL_SECRET_FILE), (AIRFLOW_SECRET, AIRFLOW_SECRET_FILE))]
        kustomization.update({"secretGenerator": generated, "generatorOptions": {"disableNameSuffixHash": True}})
    files["kustomization.yaml"] = _dump([kustomization])
    return files


def render_tree() -> dict[str, str]:
    """``{path relative to k8s/platform/: text}`` of the generated Kustomize tree (base + every overlay)."""
    parts = base_files()
    files = {f"base/{name}": _dump(objs) for name, objs in parts.items()}
    files["base/kustomization.yaml"] = _dump([{"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                               "kind": "Kustomization", "resources": list(parts)}])
    for ov in overlays().values():
        files.update({f"overlays/{ov.name}/{rel}": text for rel, text in _overlay_files(ov).items()})
    return dict(sorted(files.items()))
