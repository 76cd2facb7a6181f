from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import Settings


def test_local_profile_is_embedded(tmp_path):
    s = Settings(home=tmp_path)
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert s.artifact_location.startswith("file://")
    assert all(Path(p).is_relative_to(tmp_path) for p in (s.landing_dir, s.features_dir, s.gx_dir, s.feast_dir))


def test_production_profile_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPFLOW_PROFILE", "production")
    monkeypatch.setenv("SHOPFLOW_PRODUCTION__POSTGRES_URI", "postgresql://u@db:5432/x")
    monkeypatch.setenv("SHOPFLOW_PRODUCTION__ARTIFACT_URI", "s3://bucket/a")
    s = Settings(home=tmp_path)
    assert s.profile == "production"
    assert s.tracking_uri == "postgresql://u@db:5432/x"
    assert s.artifact_location == "s3://bucket/a"


def test_unknown_profile_and_nested_keys_are_rejected(monkeypatch):
    monkeypatch.setenv("SHOPFLOW_PROFILE", "staging")
    with pytest.raises(ValidationError, match="profile"):
        Settings()
    monkeypatch.delenv("SHOPFLOW_PROFILE")
    monkeypatch.setenv("SHOPFLOW_VALIDATION__MAX_STALE_DAYS", "3")
    with pytest.raises(ValidationError, match="max_stale_days"):
        Settings()


def test_no_current_batch_until_validated(tmp_path):
    s = Settings(home=tmp_path)
    assert current_batch_dir(s) is None
    (s.batches_dir / "abc").mkdir(parents=True)
    s.current_pointer.write_text("abc\n")
    assert current_batch_dir(s) == s.batches_dir / "abc"
