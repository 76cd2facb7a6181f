"""The code layout: one package per family, a platform that never reaches into a family, no import cycles.

The import graph is built with ``ast`` from every ``pipelines/**/*.py``, with imports inside functions and under
``if TYPE_CHECKING`` counted too: an import that only runs later still ties two modules together.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_ROOT

PIPELINES = PROJECT_ROOT / "pipelines"
MODELS = PIPELINES / "models"
OLD_PACKAGES = ("clv", "recsys", "rl", "forecast", "vision_lib")
"""Helper packages that were folded into their family's package; they must not come back."""
HEAVY = ("airflow", "bentoml", "faiss", "feast", "great_expectations", "gymnasium", "kfp", "matplotlib", "mlflow",
         "PIL", "scipy", "skops", "sklearn", "torch", "xgboost")
"""Libraries that loading the registry (every DAG parse, every CLI call) must not import."""


def _module_name(path: Path) -> str:
    """Dotted name of a source file under the project root (``pipelines/data/io.py`` -> ``pipelines.data.io``)."""
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PIPELINES.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute names of everything ``path`` imports (any nesting level), with line numbers.

    A submodule import does not count as importing its parent package: Python initialises the parent first, but
    a package whose ``__init__`` imports its own submodules is not a cycle.
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from a.b import c``: the module a.b.c when c is a submodule, else a.b (resolved by _graph)
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


@cache
def _graph() -> dict[str, set[str]]:
    """``module -> pipelines modules it imports`` (an imported name that is not a module resolves to its module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported, _ in _imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _family(module: str) -> str | None:
    """The family package a module belongs to (``pipelines.models.<family>``), or ``None``."""
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[:2] == ["pipelines", "models"] else None


def _families() -> list[Path]:
    return sorted(p for p in MODELS.iterdir() if p.is_dir() and p.name != "__pycache__")


def test_every_family_is_a_package_whose_init_only_re_exports_spec():
    from pipelines.registry import load_registry
    from pipelines.spec import ModelSpec

    assert _families(), "no family package under pipelines/models/"
    strays = sorted(p.name for p in MODELS.glob("*.py") if p.name != "__init__.py")
    assert strays == [], f"a family is a package pipelines/models/<family>/, not a module: {strays}"
    for pkg in _families():
        init = pkg / "__init__.py"
        assert init.is_file(), f"{pkg.relative_to(PROJECT_ROOT)} lacks __init__.py"
        tree = ast.parse(init.read_text())
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        for node in body:
            is_all = isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
            assert isinstance(node, ast.ImportFrom) or is_all, (
                f"{init.relative_to(PROJECT_ROOT)}:{node.lineno}: a family's __init__ only re-exports SPEC")
        exported = {a.asname or a.name for n in body if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "SPEC" in exported, f"{init.relative_to(PROJECT_ROOT)} does not export SPEC"
        module = __import__(f"pipelines.models.{pkg.name}", fromlist=["SPEC"])
        assert isinstance(module.SPEC, ModelSpec) and module.SPEC.name == pkg.name, (
            f"pipelines.models.{pkg.name}.SPEC must be a ModelSpec named {pkg.name!r}")
    assert sorted(load_registry()) == [p.name for p in _families()]


def test_the_old_helper_packages_are_gone():
    left = [name for name in OLD_PACKAGES if (PIPELINES / name).exists()]
    assert left == [], f"moved into pipelines/models/<family>/; remove {left}"
    offenders = []
    for folder in ("pipelines", "tests", "dags", "model_serving", "scripts", "feature_repo"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            for imported, line in _imports(path):
                if imported.split(".")[:2] in [["pipelines", name] for name in OLD_PACKAGES]:
                    offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {imported}")
    assert offenders == []


def test_the_platform_never_imports_a_family_and_families_do_not_import_each_other():
    """Everything outside a family reaches it through the registry (``SPEC``), never by module path."""
    offenders = []
    for module, targets in _graph().items():
        for target in targets:
            family = _family(target)
            if family is not None and _family(module) != family:
                offenders.append(f"{module} -> {target}")
    assert offenders == [], "platform -> family (or family -> family) imports: " + ", ".join(sorted(offenders))


def test_core_modules_import_no_family():
    """The modules every family builds on stay below the families (the registry finds them by name at run time)."""
    graph = _graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    core = ["pipelines.spec", "pipelines.registry", "pipelines.settings",
            *(m for m in graph if m == "pipelines.data" or m.startswith("pipelines.data."))]
    for module in core:
        families = sorted({f for m in reach(module) if (f := _family(m))})
        assert families == [], f"{module} imports (directly or through others) {families}"


def test_the_import_graph_is_acyclic():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_library_never_imports_airflow():
    offenders = [f"{path.relative_to(PROJECT_ROOT)}:{line}" for path in _modules().values()
                 for imported, line in _imports(path) if imported.split(".")[0] == "airflow"]
    assert offenders == []


def test_loading_the_registry_writes_nothing_and_imports_no_heavy_library(tmp_path):
    """Every DAG parse and CLI call loads the registry: it must stay a pure, light import."""
    home = tmp_path / "home"
    code = ("import json, sys\n"
            "from pipelines import registry\n"
            "registry.load_registry(); registry.family_data()\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOW_")}
    env["SHOPFLOW_HOME"] = str(home)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert sorted(loaded & set(HEAVY)) == [], "loading the registry imported heavy libraries"
    assert not home.exists(), f"loading the registry created {sorted(p.name for p in home.rglob('*'))}"
    assert list(cwd.iterdir()) == []
