"""The real `shopflow` console script on bad input: one line, a non-zero exit, and nothing on disk touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shopflow


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home holding an accepted batch and CURRENT (hand-made: these commands fail before reading any of it)."""
    home = tmp_path / "home"
    (home / "data" / "batches" / "b1").mkdir(parents=True)
    (home / "data" / "batches" / "b1" / "orders.parquet").write_text("x")
    (home / "data" / "CURRENT").write_text("b1\n")
    (home / "landing").mkdir()
    return home


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` except lock files (taking a lock is not touching data)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".lock")} - {"gx"}


def _one_line_error(proc) -> str:
    out = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:"), out
    return out


@pytest.mark.parametrize("hostile", ["..", "../data", "ABSOLUTE", "a/b", "."])
def test_validate_refuses_paths_and_deletes_nothing(home: Path, tmp_path: Path, hostile: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    before = _tree(home)
    proc = shopflow(home, "validate", str(victim) if hostile == "ABSOLUTE" else hostile, check=False)
    assert proc.returncode == 2
    assert "is not a batch id" in _one_line_error(proc)
    assert _tree(home) == before and (victim / "keep").exists()


def test_validate_of_a_symlinked_batch_refuses_it(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    (home / "landing" / "evil").symlink_to(victim, target_is_directory=True)
    proc = shopflow(home, "validate", "evil", check=False)
    assert proc.returncode == 1 and "symbolic link" in _one_line_error(proc)
    assert (victim / "keep").exists() and (home / "landing" / "evil").is_symlink()


@pytest.mark.parametrize("args, code, words", [
    (["validate", "nosuchbatch"], 1, "not found"),
    (["data", "generate", "--customers", "-1"], 2, "--customers must be at least 20"),
    (["data", "generate", "--seed", "-3"], 2, "--seed must be 0 or more"),
    (["run", "--model", "nosuchmodel"], 2, "unknown model 'nosuchmodel'"),
    (["train", "nosuchmodel"], 2, "unknown model 'nosuchmodel'"),
])
def test_bad_arguments_give_one_line(home: Path, args: list[str], code: int, words: str) -> None:
    before = _tree(home)
    proc = shopflow(home, *args, check=False)
    assert proc.returncode == code
    assert words in _one_line_error(proc)
    assert _tree(home) == before  # `run --model nosuchmodel` used to run the data pipeline first


def test_bad_settings_name_the_variable(home: Path) -> None:
    proc = shopflow(home, "data", "generate", check=False, SHOPFLOW_CUSTOMERS="-1")
    assert proc.returncode == 2 and "SHOPFLOW_CUSTOMERS" in _one_line_error(proc)


@pytest.mark.parametrize("sets, words", [
    (["--set", "max_depth=3"], "expects model.key=value"),
    (["--set", "churn.max_deep=3"], "bad --set for churn: max_deep"),
    (["--set", "nosuch.k=1"], "unknown model 'nosuch'"),
    (["--model", "churn", "--set", "ltv.horizon_days=90"], "ltv is not among the models of this run"),
])
def test_run_checks_its_overrides_before_anything_runs(home: Path, sets: list[str], words: str) -> None:
    before = _tree(home)
    proc = shopflow(home, "run", "--no-generate", *sets, check=False)
    assert proc.returncode == 2 and words in _one_line_error(proc)
    assert _tree(home) == before


def test_run_overrides_reach_each_model() -> None:
    from pipelines.cli import _model_overrides

    got = _model_overrides(["churn.max_depth=3", "ltv.horizon_days=90", "churn.seed=7"], ["churn", "ltv"])
    assert got == {"churn": {"max_depth": "3", "seed": "7"}, "ltv": {"horizon_days": "90"}}


@pytest.mark.parametrize("args, words", [
    (["serve", "churn", "--port", "0"], "--port"),
    (["serve", "churn"], "churn has no registered version yet"),
    (["tune", "churn", "--trials", "0"], "--trials"),
    (["approve", "churn", "1"], "approving needs --reason"),
    (["approve", "churn", "1", "--reason", "ok"], "no registered version 1"),
    (["reject", "churn", "x1", "--reason", "no"], "version must be a registry version number"),
])
def test_serving_tuning_and_approval_errors_are_one_line(home: Path, args: list[str], words: str) -> None:
    proc = shopflow(home, *args, check=False)
    assert proc.returncode != 0 and words in _one_line_error(proc), proc.stdout + proc.stderr
