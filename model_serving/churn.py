"""Churn service: champion from the MLflow registry (native XGBoost flavor) + Feast online features.

``POST /predict {"customer_ids": ["C000001", ...]}`` -> churn probability per customer and the model version.
Unknown customers, empty lists and wrong types are answered with a 4xx naming the problem.
"""

from __future__ import annotations

import logging
from typing import Annotated

import bentoml
from bentoml.exceptions import NotFound
from pydantic import BaseModel, Field

from model_serving.auth import check_bearer, resolve_api_key

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MODEL_NAME = "churn"


class ChurnPrediction(BaseModel):
    customer_id: str
    churn_probability: float = Field(ge=0, le=1)


class ChurnResponse(BaseModel):
    model: str = MODEL_NAME
    model_version: str
    feature_service: str
    predictions: list[ChurnPrediction]


@bentoml.service(name="shopflow-churn", traffic={"timeout": 30}, resources={"cpu": "1"})
class ChurnService:
    """Loads the ``champion`` once at start-up; the online store is read per request."""

    def __init__(self) -> None:
        from pipelines import tracking
        from pipelines.features.store import get_store
        from pipelines.registry import get_spec
        from pipelines.settings import get_settings

        self.settings = get_settings()
        self.spec = get_spec(MODEL_NAME)
        client = tracking.configure(self.settings)
        mv = tracking.version_by_alias(client, MODEL_NAME, tracking.CHAMPION)
        if mv is None:
            raise RuntimeError(f"no '{tracking.CHAMPION}' version of model '{MODEL_NAME}' in the registry; "
                               "run `shopflow run` first")
        self.model_version = str(mv.version)
        self.model = self.spec.load_model(f"models:/{MODEL_NAME}/{mv.version}")
        self.feature_names = list(self.model.get_booster().feature_names)
        self.store = get_store(self.settings)
        self.api_key = resolve_api_key(self.settings)
        log.info("serving %s v%s with features %s", MODEL_NAME, self.model_version, self.feature_names)

    @bentoml.api(route="/predict")
    def predict(
        self,
        customer_ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                                Field(min_length=1, max_length=MAX_BATCH)],
        ctx: bentoml.Context,
    ) -> ChurnResponse:
        """Churn probability for each customer over the model's horizon."""
        from pipelines.features.store import online_features
        from pipelines.models.churn import predict_proba

        check_bearer(ctx.request.headers.get("authorization"), self.api_key)
        unique = list(dict.fromkeys(customer_ids))
        frame = online_features(self.settings, unique, self.spec.feature_service, store=self.store)
        unknown = frame.loc[frame[self.feature_names].isna().all(axis=1), "customer_id"].tolist()
        if unknown:
            shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise NotFound(f"customer_ids: {len(unknown)} unknown customer(s) with no online features: {shown}")
        probs = dict(zip(frame["customer_id"], predict_proba(self.model, frame.fillna(0.0))))
        return ChurnResponse(
            model_version=self.model_version,
            feature_service=self.spec.feature_service,
            predictions=[ChurnPrediction(customer_id=c, churn_probability=float(probs[c])) for c in customer_ids],
        )
