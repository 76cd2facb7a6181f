"""Upload the compiled pipelines to a KFP API server, idempotently (``shopflow kfp upload``, the platform's
``kfp-upload`` Job).

Each IR file becomes a KFP pipeline named after its ``pipelineInfo.name`` (``shopflow-data``,
``shopflow-train-<model>``). Its versions are named ``<package version>-<content hash>``: a file already uploaded
with the same content is skipped, a changed one becomes a new version, so the Job can run on every apply.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import UserError
from pipelines.settings import Settings


def pipeline_name(package: Path) -> str:
    """The pipeline's name in its IR (``pipelineInfo.name``).

    Raises:
        UserError: naming the file when it is not a compiled KFP pipeline.
    """
    try:
        doc = next(iter(yaml.safe_load_all(package.read_text())), None) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{package} is not YAML: {str(exc).splitlines()[0]}") from None
    name = (doc.get("pipelineInfo") or {}).get("name") if isinstance(doc, dict) else None
    if not name:
        raise UserError(f"{package} is not a compiled KFP pipeline (no pipelineInfo.name)")
    return str(name)


def version_name(package: Path, package_version: str) -> str:
    """``<package version>-<first 12 hex of the file's SHA-256>``: equal content, equal name."""
    return f"{package_version}-{hashlib.sha256(package.read_bytes()).hexdigest()[:12]}"


def _has_version(kfp_client: Any, pipeline_id: str, name: str) -> bool:
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found = kfp_client.list_pipeline_versions(pipeline_id, page_size=1, filter=flt)
    return bool(getattr(found, "pipeline_versions", None))


def upload_one(kfp_client: Any, package: Path, package_version: str) -> dict[str, str]:
    """Upload ``package`` unless its content is already a version; returns what was done."""
    name, version = pipeline_name(package), version_name(package, package_version)
    pipeline_id = kfp_client.get_pipeline_id(name)
    if pipeline_id is None:
        created = kfp_client.upload_pipeline(str(package), pipeline_name=name,
                                             description=f"ShopFlow {package.stem} (shopflow kfp compile)")
        pipeline_id = created.pipeline_id
        action = "created"
    elif _has_version(kfp_client, pipeline_id, version):
        return {"pipeline": name, "version": version, "action": "unchanged"}
    else:
        action = "new version"
    # Also right after creating: the content-named version is what the next run finds (KFP names the first
    # version after the pipeline).
    kfp_client.upload_pipeline_version(str(package), version, pipeline_id=pipeline_id)
    return {"pipeline": name, "version": version, "action": action}


def upload_all(settings: Settings, folder: Path, compile_first: bool = False,
               kfp_client: Any = None) -> list[dict[str, str]]:
    """Upload every ``*.yaml`` pipeline of ``folder``; with ``compile_first``, compile them from the registry with
    these settings (e.g. this cluster's ``SHOPFLOW_KFP__IMAGE``) into a scratch folder and upload those.

    Raises:
        UserError: the folder holds no pipeline, or a file is not one.
        KfpNotConfigured / KfpUnreachable: from :func:`pipelines.kubeflow.submit.client`.
    """
    from pipelines.deploy.k8s import package_version
    from pipelines.kubeflow.submit import client

    with tempfile.TemporaryDirectory() as tmp:
        if compile_first:
            from pipelines.kubeflow.pipelines import compile_all

            packages = compile_all(settings, Path(tmp))
        else:
            packages = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if not packages:
            raise UserError(f"no compiled pipelines (*.yaml) in {folder}; run `shopflow kfp compile`")
        names = {p: pipeline_name(p) for p in packages}  # every file checked before anything is uploaded
        kfp_client = kfp_client or client(settings)
        version = package_version()
        return [upload_one(kfp_client, p, version) for p in names]
