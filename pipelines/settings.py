"""One typed configuration for every ShopFlow entry point.

Values come from environment variables prefixed ``SHOPFLOW_`` (nested with ``__``), e.g.
``SHOPFLOW_PROFILE=production`` or ``SHOPFLOW_HOME=/data/shopflow``. Two profiles share one code path:

* ``local`` (default): everything embedded under one home directory (SQLite metadata, local artifact files,
  Feast file offline store + SQLite online store). No server is needed.
* ``production``: MLflow on PostgreSQL + object storage, Feast registry on PostgreSQL and online store on Redis.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""Checkout root (the project is installed editable, so dags/ and feature_repo/ sit beside the package)."""


class ProductionSettings(BaseModel):
    """Service locations used by the ``production`` profile."""

    model_config = ConfigDict(extra="forbid")

    postgres_uri: str = "postgresql://postgres@127.0.0.1:5432/shopflow"
    redis_connection: str = "127.0.0.1:6379"
    artifact_uri: str = "s3://shopflow-mlflow/artifacts"
    feast_registry_uri: str | None = None
    """SQL registry for Feast; defaults to ``postgres_uri`` with the ``postgresql+psycopg`` driver."""


class ValidationSettings(BaseModel):
    """Thresholds of the data-quality gate."""

    model_config = ConfigDict(extra="forbid")

    max_staleness_days: float = Field(3.0, gt=0, description="Newest event must be at most this old.")
    min_rows: int = Field(10, ge=1, description="Each table needs at least this many rows.")
    historical: bool = Field(False, description="Judge every batch's freshness as of its own newest timestamp "
                                                "(old, historical data) instead of now.")


class ServingSettings(BaseModel):
    """How a Bento service loads and routes its model versions."""

    model_config = ConfigDict(extra="forbid")

    arm: Literal["both", "champion", "challenger"] = "both"
    """``both``: one process serves champion and challenger and splits traffic itself (local, sticky by
    customer); ``champion``/``challenger``: a per-arm Deployment (Kubernetes) serving only that alias."""
    max_batch: int = Field(1000, ge=1, description="Largest list one request may carry (413/400 above it).")
    batching: bool = Field(True, description="Adaptive batching of model calls across concurrent requests.")
    batch_max_latency_ms: int = Field(10_000, ge=10, le=60_000,
                                      description="Longest a request may queue for a batch before a 503.")


class RolloutSettings(BaseModel):
    """A/B rollout: ramp schedule, statistics and guardrails."""

    model_config = ConfigDict(extra="forbid")

    ramp: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5],
                              description="Challenger traffic share at each ramp step.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Error rate of the sequential test (safe to peek).")
    min_samples_per_arm: int = Field(200, ge=1, description="No decision before each arm has this many units.")
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Guardrail: challenger error rate ceiling.")
    max_p99_latency_ms: float = Field(500.0, gt=0, description="Guardrail: challenger p99 latency ceiling.")
    srm_p_value: float = Field(0.001, gt=0, lt=1, description="Sample-ratio mismatch alarm threshold.")


class Settings(BaseSettings):
    """ShopFlow settings. Read with :func:`get_settings`; never instantiate at import time in library code."""

    model_config = SettingsConfigDict(env_prefix="SHOPFLOW_", env_nested_delimiter="__", extra="ignore")

    profile: Literal["local", "production"] = "local"
    home: Path = Field(default_factory=lambda: Path.cwd() / ".shopflow")
    seed: int = 42
    customers: int = Field(2000, ge=20, description="Default scale of the generated shop.")
    api_key: SecretStr | None = None
    production: ProductionSettings = Field(default_factory=ProductionSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    promotion: Literal["offline", "ab"] = "offline"
    """``offline``: the training gate moves ``champion`` when a version wins on the holdout; ``ab``: a winning
    version stays ``challenger`` until an A/B rollout (``shopflow rollout``) promotes it."""
    mlflow_tracking_uri: str | None = None
    """Overrides the profile's tracking URI (e.g. a remote MLflow server)."""

    # ---- derived locations (all data locations come from here, never from literals elsewhere) ----
    @property
    def landing_dir(self) -> Path:
        """New raw batches arrive here, one sub-folder per batch, before validation."""
        return self.home / "landing"

    @property
    def batches_dir(self) -> Path:
        """Validated raw batches, one sub-folder per batch id (content hash)."""
        return self.home / "data" / "batches"

    @property
    def current_pointer(self) -> Path:
        """File holding the id of the last good (validated) batch."""
        return self.home / "data" / "CURRENT"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def truth_dir(self) -> Path:
        """Hidden ground truth of generated data, kept apart from training data."""
        return self.home / "truth"

    @property
    def features_dir(self) -> Path:
        """Offline feature files read by Feast's file offline store."""
        return self.home / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store (local profile)."""
        return self.home / "feast"

    @property
    def gx_dir(self) -> Path:
        """Great Expectations project (suites, results, Data Docs)."""
        return self.home / "gx"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking + registry store for the active profile."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.profile == "production":
            return self.production.postgres_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_location(self) -> str:
        """Default artifact root for new MLflow experiments."""
        if self.profile == "production":
            return self.production.artifact_uri
        return self.mlflow_artifacts_dir.resolve().as_uri()

    @property
    def rollout_db_uri(self) -> str:
        """SQLAlchemy URI of the durable A/B store (assignments, outcomes, rollout state, alias history)."""
        if self.profile == "production":
            return self.production.postgres_uri
        return f"sqlite:///{(self.home / 'rollout.db').resolve()}"

    def current_batch_dir(self) -> Path | None:
        """Folder of the last good batch, or ``None`` if no batch has passed validation yet."""
        if not self.current_pointer.exists():
            return None
        batch_id = self.current_pointer.read_text().strip()
        path = self.batches_dir / batch_id
        return path if path.exists() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process (call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
