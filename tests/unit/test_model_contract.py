"""The standard checks every registered model family gets, with no per-family test code."""

from __future__ import annotations

from pathlib import Path

import pytest
from feast import FeatureService
from pydantic import ValidationError

from pipelines.features import store
from pipelines.registry import load_registry
from pipelines.settings import PROJECT_ROOT, Settings

SPECS = load_registry()


@pytest.fixture(scope="module")
def feature_services(tmp_path_factory) -> set[str]:
    settings = Settings(home=tmp_path_factory.mktemp("contract"))
    return {d.name for d in store.definitions(settings) if isinstance(d, FeatureService)}


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_complete(name):
    spec = SPECS[name]
    assert spec.name == name and spec.primary_metric and spec.description
    # holdout + metric: the champion gate compares per-unit holdout results (no family is judged otherwise).
    for hook in ("prepare", "fit", "evaluate", "score", "log_model", "load_model", "holdout", "metric"):
        assert callable(getattr(spec, hook)), hook
    params = spec.parse_params({})
    assert params.seed == 42  # seeded by default


@pytest.mark.parametrize("name", SPECS)
def test_params_forbid_unknown_keys(name):
    with pytest.raises(ValidationError, match="not_a_param"):
        SPECS[name].parse_params({"not_a_param": 1})


@pytest.mark.parametrize("name", SPECS)
def test_feature_service_is_defined_in_the_feast_repo(name, feature_services):
    assert SPECS[name].feature_service in feature_services


@pytest.mark.parametrize("name", SPECS)
def test_model_card_exists_and_is_indexed(name):
    card = PROJECT_ROOT / "docs" / "models" / f"{name}.md"
    assert card.exists(), f"write the model card {card.relative_to(PROJECT_ROOT)}"
    assert f"models/{name}.md" in (PROJECT_ROOT / "docs" / "models.md").read_text()
