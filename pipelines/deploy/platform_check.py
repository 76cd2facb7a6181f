"""Offline validation of the platform tree (``k8s/platform``): the serving checks of :func:`k8s.check_objects`
(strict OpenAPI schemas, selectors, references, pod policy) plus what only the platform has: RBAC references, the
executor's permissions, and the KubernetesExecutor pod template, a YAML document inside a ConfigMap that no schema
check would otherwise see, validated as a Pod with the same policy as every other pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from pipelines.deploy import k8s
from pipelines.deploy import platform as pf

EXECUTOR_VERBS = {"create", "get", "list", "watch", "delete"}
"""What the KubernetesExecutor needs on pods: start a task, follow it, clean it up."""
TREE = k8s.K8S_ROOT / "platform"
REQUIRED = {("Deployment", n) for n in ("mlflow", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                                        "airflow-triggerer")} | {("Job", "airflow-db-migrate"), ("Job", "kfp-upload"),
                                                                 ("Service", "mlflow"), ("Service", "airflow-api-server")}
"""What a platform render must contain (a file dropped from the tree would otherwise still validate)."""


def _rbac_errors(objs: list[dict[str, Any]], by_key: Mapping[tuple, dict]) -> list[str]:
    errors = []
    for rb in (o for o in objs if o["kind"] == "RoleBinding"):
        where, ns = k8s._ref(rb), rb["metadata"].get("namespace", "")
        if (rb["roleRef"]["kind"], ns, rb["roleRef"]["name"]) not in by_key:
            errors.append(f"{where}: roleRef {rb['roleRef']['kind']}/{rb['roleRef']['name']} is not in this render")
        for s in rb.get("subjects", []):
            if s["kind"] == "ServiceAccount" and ("ServiceAccount", s.get("namespace", ns), s["name"]) not in by_key:
                errors.append(f"{where}: subject ServiceAccount {s['name']!r} is not in this render")
            if s["kind"] == "ServiceAccount" and s.get("namespace", ns) != ns:
                errors.append(f"{where}: subject {s['name']!r} is in namespace {s.get('namespace')!r}, not {ns!r}")
    return errors


def _granted(objs: list[dict[str, Any]], ns: str, account: str) -> set[str]:
    """Verbs on ``pods`` that ``account`` gets through Roles bound in ``ns``."""
    verbs: set[str] = set()
    roles = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Role" and o["metadata"].get("namespace", "") == ns}
    for rb in (o for o in objs if o["kind"] == "RoleBinding" and o["metadata"].get("namespace", "") == ns):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in rb.get("subjects", [])):
            for rule in (roles.get(rb["roleRef"]["name"]) or {}).get("rules", []):
                if "" in rule.get("apiGroups", []) and "pods" in rule.get("resources", []):
                    verbs |= set(rule.get("verbs", []))
    return verbs


def _env(container: Mapping[str, Any], by_key: Mapping[tuple, dict], ns: str) -> dict[str, str]:
    """Literal environment of a container: its ConfigMaps (``envFrom``) overlaid with its own ``env`` values."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env.update((by_key.get(("ConfigMap", ns, src["configMapRef"]["name"])) or {}).get("data", {}))
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def pod_template_errors(scheduler: Mapping[str, Any], by_key: Mapping[tuple, dict],
                        external_secrets: Iterable[str]) -> list[str]:
    """The executor of ``scheduler`` (a Deployment) and the pod template it reads: mounted where the config points,
    a valid Pod with container ``base``, the policy of every pod, references resolved, the scheduler's image."""
    where, ns = k8s._ref(scheduler), scheduler["metadata"].get("namespace", "")
    pod = scheduler["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    env = _env(main, by_key, ns)
    if env.get("AIRFLOW__CORE__EXECUTOR") != "KubernetesExecutor":
        return [f"{where}: AIRFLOW__CORE__EXECUTOR is {env.get('AIRFLOW__CORE__EXECUTOR')!r}, not KubernetesExecutor"]
    path = Path(env.get("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", ""))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mount = next((m for m in main.get("volumeMounts", []) if Path(m["mountPath"]) == path.parent), None)
    source = (volumes.get(mount["name"]) or {}).get("configMap") if mount else None
    if not source:
        return [f"{where}: pod template file {str(path)!r} is not mounted from a ConfigMap"]
    cm = by_key.get(("ConfigMap", ns, source["name"]))
    text = ((cm or {}).get("data") or {}).get(path.name)
    if text is None:
        return [f"{where}: ConfigMap {source['name']!r} has no key {path.name!r} (the pod template file)"]
    tw = f"pod template {source['name']}/{path.name}"
    try:
        template = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"{tw}: not YAML: {str(exc).splitlines()[0]}"]
    validator = k8s._schema_validator("v1", "Pod", k8s.K8S_VERSION)
    errors = [f"{tw}: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in validator.iter_errors(template)]
    if errors:
        return errors
    errors += k8s.check_pod(tw, ns, template["spec"], by_key, set(external_secrets), {})
    names = [c["name"] for c in template["spec"]["containers"]]
    if "base" not in names:
        errors.append(f"{tw}: the KubernetesExecutor runs the task in a container named 'base'; got {names}")
    else:
        base = next(c for c in template["spec"]["containers"] if c["name"] == "base")
        if base.get("image") != main.get("image"):
            errors.append(f"{tw}: image {base.get('image')!r} differs from the scheduler's {main.get('image')!r}")
    missing = EXECUTOR_VERBS - _granted(list(by_key.values()), ns, pod.get("serviceAccountName"))
    if missing:
        errors.append(f"{where}: ServiceAccount {pod.get('serviceAccountName')!r} may not {sorted(missing)} pods "
                      f"(the KubernetesExecutor needs {sorted(EXECUTOR_VERBS)})")
    return errors


def check_objects(objs: list[dict[str, Any]], external_secrets: Iterable[str] = pf.EXTERNAL_SECRETS) -> list[str]:
    """Every problem found in one platform render, offline; empty when it is valid."""
    errors = k8s.check_objects(objs, external_secrets, probes=pf.PROBES)
    if errors:
        return errors  # cross-checks below assume schema-valid objects
    by_key = {k8s._key(o): o for o in objs}
    present = {(o["kind"], o["metadata"]["name"]) for o in objs}
    errors += [f"{kind} {name} is missing from this render" for kind, name in sorted(REQUIRED - present)]
    errors += _rbac_errors(objs, by_key)
    schedulers = [o for o in objs if o["kind"] == "Deployment"
                  and o["metadata"]["labels"].get("app.kubernetes.io/component") == "scheduler"]
    if not schedulers:
        errors.append("no Airflow scheduler Deployment in this render")
    for dep in schedulers:
        errors += pod_template_errors(dep, by_key, external_secrets)
    return errors


def validate_tree(root: Path = TREE, overlay_names: Iterable[str] | None = None,
                  use_kustomize: bool = True) -> list[k8s.ValidationReport]:
    """Build every platform overlay under ``root`` (Kustomize, else the Python render) and check it."""
    kubectl = k8s.kubectl_binary() if use_kustomize else None
    reports = []
    for name in overlay_names or ["base", *pf.overlays()]:
        path = root / "base" if name == "base" else root / "overlays" / name
        objs, engine = (k8s.kustomize_build(path, kubectl), "kustomize") if kubectl else (pf.render_objects(name),
                                                                                           "python")
        external = set() if name == "local" else pf.EXTERNAL_SECRETS
        reports.append(k8s.ValidationReport(f"platform/{name}", len(objs), engine, check_objects(objs, external)))
    return reports
