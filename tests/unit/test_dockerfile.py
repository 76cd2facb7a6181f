"""The platform image recipe (``Dockerfile``) carries what the code resolves from the project root.

No image is built here (no registry for base images on the test machines): the recipe is checked against the code's
own view of the layout, so a new top-level folder the platform reads cannot be forgotten silently.
"""

from __future__ import annotations

import re

from pipelines.features.store import FEATURE_REPO
from pipelines.orchestration import DAGS_FOLDER
from pipelines.settings import PROJECT_ROOT


def _instructions() -> list[tuple[str, str]]:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


def test_the_image_copies_every_folder_the_platform_resolves_from_the_project_root():
    copied = {args.split()[0].rstrip("/") for op, args in _instructions() if op == "COPY"}
    for folder in (FEATURE_REPO, DAGS_FOLDER, PROJECT_ROOT / "pipelines", PROJECT_ROOT / "model_serving"):
        assert folder.relative_to(PROJECT_ROOT).as_posix() in copied
    ignored = {line.strip().rstrip("/") for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & {"feature_repo", "dags", "pipelines", "model_serving", "constraints.txt", "pyproject.toml"}


def test_the_image_installs_the_pinned_stack_editable_on_python_311():
    ops = _instructions()
    assert any(op == "FROM" and args.startswith("python:3.11") for op, args in ops)
    runs = " ".join(args for op, args in ops if op == "RUN")
    assert "pip install -c constraints.txt -e ." in runs  # editable: PROJECT_ROOT is the copied tree
    env = " ".join(args for op, args in ops if op == "ENV")
    assert "SHOPFLOW_PROFILE=production" in env and "AIRFLOW__CORE__DAGS_FOLDER=/opt/shopflow/dags" in env
