"""One typed configuration for every ShopFlow entry point.

Values come from environment variables prefixed ``SHOPFLOW_`` (nested with ``__``), e.g.
``SHOPFLOW_PROFILE=production`` or ``SHOPFLOW_HOME=/data/shopflow``. Two profiles share one code path:

* ``local`` (default): everything embedded under one home directory (SQLite metadata, local artifact files,
  Feast file offline store + SQLite online store). No server is needed.
* ``production``: Airflow metadata, MLflow tracking/registry and Feast's registry and offline store on PostgreSQL,
  Feast's online store on Redis, MLflow artifacts and the home's durable files on S3-compatible object storage; the
  home is a scratch cache (each task may start with an empty one).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""Checkout root (the project is installed editable, so dags/ and feature_repo/ sit beside the package)."""
PRODUCTION_SECRET_KEYS = ("SHOPFLOW_API_KEY", "SHOPFLOW_PRODUCTION__POSTGRES_URI", "SHOPFLOW_PRODUCTION__AIRFLOW_URI",
                          "SHOPFLOW_PRODUCTION__REDIS_CONNECTION", "SHOPFLOW_PRODUCTION__ARTIFACT_URI",
                          "SHOPFLOW_PRODUCTION__DATA_URI", "SHOPFLOW_PRODUCTION__S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                          "AWS_SECRET_ACCESS_KEY")
"""Keys of the ``shopflow-secrets`` Secret: what a pod of the production profile reads as environment (model
servers, Airflow task pods, KFP components). ``S3_ENDPOINT_URL`` may be empty (AWS S3)."""


class ProductionSettings(BaseModel):
    """Service locations used by the ``production`` profile."""

    model_config = ConfigDict(extra="forbid")

    postgres_uri: str = "postgresql://postgres@127.0.0.1:5432/shopflow"
    redis_connection: str = "127.0.0.1:6379"
    artifact_uri: str = "s3://shopflow-mlflow/artifacts"
    feast_registry_uri: str | None = None
    """SQL registry for Feast; defaults to ``postgres_uri`` with the ``postgresql+psycopg`` driver. Feast's offline
    store (one schema per feature snapshot) lives in ``postgres_uri``'s database."""
    airflow_uri: str | None = None
    """Airflow's metadata database; default: ``postgres_uri``'s server, database ``<name>_airflow`` (its own
    database: Airflow and MLflow both keep an ``alembic_version`` table)."""
    data_uri: str = "s3://shopflow-data/home"
    """Object storage of the home's durable files (batches, pointers, snapshot manifests, truth), see
    :mod:`pipelines.objectstore`; the home itself is only a scratch cache in this profile."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, a local test server) for ``data_uri`` and ``s3://`` artifacts; ``None``: AWS."""

    @property
    def airflow_db_uri(self) -> str:
        if self.airflow_uri:
            return self.airflow_uri
        base, _, name = self.postgres_uri.rpartition("/")
        name, sep, query = name.partition("?")
        return f"{base}/{name}_airflow{sep}{query}"


class ValidationSettings(BaseModel):
    """Thresholds of the data-quality gate."""

    model_config = ConfigDict(extra="forbid")

    max_staleness_days: float = Field(3.0, gt=0, description="Newest event must be at most this old.")
    min_rows: int = Field(10, ge=1, description="Each table needs at least this many rows.")
    historical: bool = Field(False, description="Judge every batch's freshness as of its own newest timestamp "
                                                "(old, historical data) instead of now.")
    amount_tolerance: float = Field(0.01, ge=0, description="orders.amount may differ from quantity * unit_price "
                                                            "by this much per unit (rounding).")
    # Comparison with the last accepted batch. Defaults measured on generated shops: between two seeds of the same
    # size medians and means move at most 1.6x, row counts 1.1x, a new maximum is at most 3.6x the old p99.9.
    compare: bool = Field(True, description="Compare each batch with the last accepted one (shifts, vanished or "
                                            "new categories, row-count jumps); false accepts a deliberate break.")
    min_compare_rows: int = Field(30, ge=1, description="Compare a table or column only when the previous batch "
                                                        "had at least this many rows (values) of it.")
    max_shift_ratio: float = Field(2.0, gt=1, description="Median and mean of a numeric column may move at most "
                                                          "this factor up or down.")
    max_tail_ratio: float = Field(10.0, gt=1, description="A numeric column's new maximum may be at most this "
                                                          "times the previous batch's 99.9th percentile.")
    max_row_count_ratio: float = Field(2.0, gt=1, description="A table's row count may grow or shrink at most "
                                                              "this factor.")
    max_new_category_share: float = Field(0.1, ge=0, le=1, description=(
        "Share of rows whose category value the previous batch did not have: above it the batch fails, up to it "
        "the report warns. A category value that vanishes always fails."))


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
    workers: int = Field(0, ge=0, le=64, description=(
        "Worker processes of `shopflow serve` (each loads the model); 0: one per CPU, at most 4. A Kubernetes pod "
        "runs one and scales by replicas."))
    access_log: bool = Field(False, description=(
        "BentoML's per-request access log line of `shopflow serve` (costs about a fifth of a small request's CPU; "
        "the Prometheus metrics count every request either way)."))
    max_body_bytes: int = Field(8_000_000, ge=1024, description="Largest request body (413 above it).")
    body_idle_timeout_s: float = Field(5.0, gt=0, le=60, description=(
        "Longest wait for the next chunk of a request body (408 after it: a body shorter than its "
        "Content-Length does not hold a request slot)."))
    max_image_pixels: int = Field(4096 * 4096, ge=64, description=(
        "Largest decoded image (width x height) an endpoint accepts; checked from the header, before decoding."))
    max_image_side: int = Field(512, ge=32, description=(
        "Decoded images are shrunk (aspect kept) to at most this many pixels per side before the model sees them "
        "(served image models take at most 128)."))
    max_concurrent_decodes: int = Field(2, ge=1, le=64, description=(
        "Images decoded at once per worker (others wait): bounds the memory of parallel large uploads."))


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


class GateSettings(BaseModel):
    """The champion gate: a paired bootstrap of the improvement over the best baseline and the champion."""

    model_config = ConfigDict(extra="forbid")

    confidence: float = Field(0.95, gt=0.5, lt=1, description="Two-sided level of the improvement's interval; "
                                                             "its lower end must be above zero.")
    samples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples of the holdout units.")
    seed: int = Field(0, ge=0, description="Seed of the resampling (the gate is deterministic).")
    min_units: int = Field(10, ge=1, description="Fewest common holdout units the gate judges on; below it a version "
                                                 "is not promoted (promote it with --reason).")


class KfpSettings(BaseModel):
    """Kubeflow Pipelines: where heavy training runs in a cluster, and what its pods run."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["inprocess", "kfp"] = "inprocess"
    """``inprocess``: the Airflow training DAG trains in its own task; ``kfp``: it submits the family's compiled
    training pipeline to Kubeflow Pipelines and waits for it without holding a worker slot."""
    host: str | None = Field(None, description="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow:80.")
    namespace: str = "kubeflow"
    experiment: str = "shopflow"
    image: str = Field("registry.example.com/shopflow/shopflow:0.1.0", description="Image of every component (ShopFlow "
                                                                       "installed, no package index needed).")
    secret: str = Field("shopflow-secrets", description="Kubernetes Secret whose keys become SHOPFLOW_* "
                                                        "variables of every component (API key, store URIs).")
    poll_seconds: int = Field(60, ge=5, description="How often Airflow checks a submitted run (reschedule mode).")
    timeout_hours: float = Field(12.0, gt=0, description="A run still going after this fails the Airflow task.")


class MonitorSettings(BaseModel):
    """Drift and live-performance monitoring (``shopflow monitor``, the ``shopflow_monitor`` DAG)."""

    model_config = ConfigDict(extra="forbid")

    # PSI above 0.2 is the usual "significant shift"; the test's p-value guards small samples, where PSI alone is
    # noisy. Measured on generated shops of 1,500 customers: other seeds of the same shop stay below 0.07, a shop
    # whose customers buy twice as often and spend twice as much (`--drift 1`) reaches 0.25-0.3.
    max_psi: float = Field(0.2, gt=0, description="A feature drifts when its population stability index is above "
                                                   "this AND its KS / chi-square p-value is below `alpha`.")
    alpha: float = Field(0.001, gt=0, lt=1, description="Significance of the KS (numeric) and chi-square "
                                                        "(categorical) tests.")
    bins: int = Field(10, ge=2, le=100, description="Quantile bins of the reference for PSI.")
    max_categories: int = Field(20, ge=2, description="A column with at most this many distinct values (or a "
                                                      "non-numeric one) is compared as categorical (chi-square).")
    max_drifted_share: float = Field(0.0, ge=0, le=1, description=(
        "A model's data drift breaches when more than this share of its features drift (0: any feature)."))
    min_rows: int = Field(50, ge=5, description="Compare a sample only when both sides have this many values.")
    reference_rows: int = Field(5000, ge=100, description="Rows of the training reference kept per model version.")
    max_performance_drop: float = Field(0.1, ge=0, description=(
        "Live performance breaches when it is worse than the offline holdout value by more than this share of it."))
    min_live_units: int = Field(30, ge=1, description="Units with outcomes needed to judge live performance.")
    performance: bool = Field(True, description="Score the champion on the newest batch's outcomes (runs each "
                                                "family's prepare; false: drift only).")
    serve_sample_rate: float = Field(1.0, ge=0, le=1, description="Share of served requests logged for monitoring.")
    serve_sample_rows: int = Field(5000, ge=10, description=(
        "Served-request log rows kept per service process (the newest; older ones rotate out)."))
    serve_sample_items: int = Field(20, ge=1, description="Items of one list request logged at most.")
    prediction_window: int = Field(500, ge=10, description=(
        "Prediction drift compares the oldest and the newest this-many served predictions of the champion."))
    retrain_on_breach: bool = Field(False, description="A breach updates the retraining Asset of the model "
                                                       "(its training DAG then runs), besides failing the task.")


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
    gate: GateSettings = Field(default_factory=GateSettings)
    kfp: KfpSettings = Field(default_factory=KfpSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    promotion: Literal["offline", "ab", "approve"] = "offline"
    """``offline``: the training gate moves ``champion`` when a version wins on the holdout; ``ab``: a winning
    version stays ``challenger`` until an A/B rollout (``shopflow rollout``) promotes it; ``approve``: a winning
    version waits for a person (Airflow's approval task or ``shopflow approve|reject``, see
    :mod:`pipelines.approval`)."""
    mlflow_tracking_uri: str | None = None
    """Overrides the profile's tracking URI (e.g. a remote MLflow server)."""
    feature_snapshot: str | None = None
    """Pin readers to this feature snapshot and its batch instead of what ``CURRENT`` names (see
    :func:`pipelines.features.snapshot.pinned`: a training run pins itself so a concurrent switch cannot mix
    batches)."""

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
        """The batch in use and its feature snapshot (JSON, replaced in one step; see pipelines/data/current.py)."""
        return self.home / "data" / "CURRENT"

    @property
    def pending_pointer(self) -> Path:
        """Id of the newest accepted batch whose features are not yet current."""
        return self.home / "data" / "PENDING"

    @property
    def data_history(self) -> Path:
        """One JSON line per accepted batch and per switch of CURRENT (when, who, why)."""
        return self.home / "data" / "history.jsonl"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def truth_dir(self) -> Path:
        """Hidden ground truth of generated data, kept apart from training data."""
        return self.home / "truth"

    @property
    def features_dir(self) -> Path:
        """Feature snapshots, one folder per snapshot id, read by Feast's file offline store."""
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
    def monitoring_dir(self) -> Path:
        """Served-request samples (``served/<model>/``), monitoring history and reports."""
        return self.home / "monitoring"

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process (call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
