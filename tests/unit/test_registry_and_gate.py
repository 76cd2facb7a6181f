"""The model-spec registry."""

import importlib
import sys
import textwrap

import pytest
from pydantic import ValidationError

from pipelines import registry
from pipelines.registry import get_spec, load_registry


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


def test_new_spec_package_is_discovered_without_other_changes(tmp_path, monkeypatch):
    """A seventh family is one new package: the registry picks it up (and ignores a stray plain module)."""
    from pipelines import models

    pkg_dir = tmp_path / "extra"
    (pkg_dir / "toy").mkdir(parents=True)
    (pkg_dir / "stray.py").write_text("raise AssertionError('a plain module is not a family')\n")
    (pkg_dir / "toy" / "__init__.py").write_text(textwrap.dedent("""
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


def test_summary_metrics_are_strict_json() -> None:
    """A family may report an undefined metric (an empty calibration decile): the run summary, which travels as
    Airflow XCom and KFP output, carries it as null, never NaN (invalid JSON)."""
    import json
    import math

    from pipelines.training import _finite

    values = {"mae": 12.5, "calibration_decile_01": math.nan, "ratio": math.inf}
    out = {k: _finite(v) for k, v in values.items()}
    assert out == {"mae": 12.5, "calibration_decile_01": None, "ratio": None}
    json.dumps(out, allow_nan=False)
