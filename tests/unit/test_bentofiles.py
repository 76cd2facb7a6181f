"""The Bento files are generated from the registry and kept in step with it."""

from __future__ import annotations

import yaml

from model_serving import bentofiles
from model_serving.launcher import build_command, service_target
from pipelines.registry import load_registry


def test_committed_bentofiles_match_the_registry():
    stale = bentofiles.stale_files()
    assert not stale, f"regenerate with `python -m model_serving.bentofiles`: {[p.name for p in stale]}"


def test_every_family_is_served_from_the_shared_service():
    assert set(bentofiles.served_models()) == set(load_registry())
    for model in bentofiles.served_models():
        doc = yaml.safe_load(bentofiles.bentofile(model))
        assert doc["service"] == service_target(model) == f"model_serving.service:{model.capitalize()}Service"
        assert doc["labels"]["gpu"] == str(bool(load_registry()[model].resources.get("gpu"))).lower()
        assert build_command(model)[-3:] == ["-f", f"model_serving/bentofile.{model}.yaml", "."]


def test_requirements_are_pinned_from_constraints():
    lines = [ln for ln in bentofiles.requirements().splitlines() if not ln.startswith("#")]
    assert len(lines) == len(bentofiles.RUNTIME_PACKAGES) and all("==" in ln for ln in lines)


def test_unknown_model_is_a_clear_error():
    import pytest

    with pytest.raises(KeyError, match="served models: churn"):
        service_target("nope")


def test_serving_doc_matches_the_registry():
    from model_serving import apidoc

    assert not apidoc.stale(), "regenerate with `python -m model_serving.apidoc`"
    text = apidoc.DOC.read_text()
    for model, spec in load_registry().items():
        assert f"## {model}: `POST {spec.serving.route}`" in text
