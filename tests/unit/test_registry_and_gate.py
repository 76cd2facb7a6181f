"""The model-spec registry and the champion/challenger decision."""

import importlib
import sys
import textwrap

import pytest
from pydantic import ValidationError

from pipelines import registry
from pipelines.registry import get_spec, load_registry
from pipelines.tracking import decide


def test_registry_discovers_churn():
    specs = load_registry()
    assert "churn" in specs
    spec = specs["churn"]
    assert spec.feature_service == "churn_v1" and spec.primary_metric == "auc" and spec.higher_is_better


def test_params_forbid_unknown_keys_and_coerce_strings():
    spec = get_spec("churn")
    assert spec.parse_params({"max_depth": "6"}).max_depth == 6
    with pytest.raises(ValidationError, match="max_deep"):
        spec.parse_params({"max_deep": 6})
    with pytest.raises(ValidationError, match="horizon_days"):
        spec.parse_params({"horizon_days": 0})


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match="known models: .*churn"):
        get_spec("nope")


def test_new_spec_module_is_discovered_without_other_changes(tmp_path, monkeypatch):
    """A seventh family is one new module: the registry picks it up."""
    from pipelines import models

    pkg_dir = tmp_path / "extra"
    pkg_dir.mkdir()
    (pkg_dir / "toy.py").write_text(textwrap.dedent("""
        from pipelines.spec import ModelParams, ModelSpec
        class ToyParams(ModelParams):
            k: int = 1
        SPEC = ModelSpec(name="toy", params=ToyParams, feature_service="toy_v1", primary_metric="mae",
                         higher_is_better=False, prepare=None, fit=None, evaluate=None, score=None,
                         log_model=None, load_model=None)
    """))
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(pkg_dir)])
    registry.load_registry.cache_clear()
    try:
        specs = load_registry()
        assert {"churn", "toy"} <= set(specs)
        assert specs["toy"].better(0.9, 1.0, 0.01) and not specs["toy"].better(0.995, 1.0, 0.01)
    finally:
        sys.modules.pop("pipelines.models.toy", None)
        registry.load_registry.cache_clear()


def test_gate_promotes_only_real_improvement():
    spec = get_spec("churn")
    first = decide(spec, "1", 0.80, None, None, 0.002)
    assert first.promoted and first.reason == "no champion yet"
    same = decide(spec, "2", 0.80, "1", 0.80, 0.002)
    assert not same.promoted and "does not beat" in same.reason
    tiny = decide(spec, "2", 0.8015, "1", 0.80, 0.002)
    assert not tiny.promoted
    better = decide(spec, "2", 0.83, "1", 0.80, 0.002)
    assert better.promoted and "beats champion v1" in better.reason
    worse = decide(spec, "3", 0.70, "1", 0.80, 0.002)
    assert not worse.promoted
    rerun = decide(spec, "1", 0.80, "1", 0.80, 0.002)
    assert not rerun.promoted and "already the champion" in rerun.reason
