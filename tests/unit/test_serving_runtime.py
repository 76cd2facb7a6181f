"""The serving runtime (no HTTP): A/B routing per item, arm pinning, request limits, OpenAPI 3.0 schemas.

Uses a real MLflow registry (SQLite, two versions of a trivial model) and the real rollout store; the family is a
toy spec whose "model" answers with the version it was loaded from, so the arm each item reached is observable.
"""

from __future__ import annotations

import pytest
from pydantic import Field

from pipelines import rollout, tracking
from pipelines.serving import CustomerIds, RequestError, ServingRuntime, TooLarge
from pipelines.settings import Settings
from pipelines.spec import ApiModel, ModelParams, ModelSpec, ServedItem, ServedResponse, ServingSpec, openapi30
from tests.conftest import two_arm_settings, two_version_registry

MODEL = "toy_served"


class ToyRequest(ApiModel):
    customer_ids: CustomerIds
    boost: float | None = Field(None, gt=0)


class ToyItem(ServedItem):
    customer_id: str
    served_by: str


class ToyResponse(ServedResponse):
    predictions: list[ToyItem]


def _predict(uri: str, request: ToyRequest) -> dict:
    if "C_BAD" in request.customer_ids:
        raise RequestError("customer_ids", "C_BAD is not allowed")
    return {"predictions": [{"customer_id": c, "served_by": uri.rsplit("/", 1)[-1]} for c in request.customer_ids]}


SPEC = ModelSpec(
    name=MODEL, params=ModelParams, feature_service="none", primary_metric="m", higher_is_better=True,
    prepare=None, fit=None, evaluate=None, score=None, log_model=None, load_model=None,
    serving=ServingSpec(request=ToyRequest, response=ToyResponse, load=lambda s, uri: uri, predict=_predict,
                        unit_id=lambda r: r.customer_ids[0], items_field="customer_ids"),
)


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory) -> str:
    """An MLflow registry with versions 1 and 2 of a trivial model (logged for real, once)."""
    return two_version_registry(tmp_path_factory.mktemp("mlflow"), MODEL, "serving-runtime")


@pytest.fixture
def settings(registry_uri, tmp_path, monkeypatch) -> Settings:
    with two_arm_settings(monkeypatch, tmp_path / "home", registry_uri, MODEL, rollout__ramp="[0.5]") as s:
        yield s


IDS = [f"C{i:04d}" for i in range(200)]


def test_without_experiment_everything_is_champion_and_nothing_logged(settings):
    rt = ServingRuntime(settings, SPEC)
    served = rt.handle(ToyRequest(customer_ids=IDS[:20]))
    assert served.body["arm"] == "champion" and served.body["model_version"] == "1"
    assert {p["served_by"] for p in served.body["predictions"]} == {"1"}
    assert rt.loaded_versions() == ["1"]  # the challenger is not loaded until an experiment needs it


def test_list_requests_split_per_item_by_sticky_arm_and_are_logged(settings):
    rollout.start(settings, MODEL, actor="test", reason="unit test")
    rt = ServingRuntime(settings, SPEC)
    rt.router.cache_seconds = 0
    served = rt.handle(ToyRequest(customer_ids=IDS))
    body = served.body
    assert body["arm"] == "mixed" and body["model_version"] == "1,2" and body["experiment_id"]
    assert [p["customer_id"] for p in body["predictions"]] == IDS  # request order kept across arms
    expected = {c: rt.router.assign(c).arm for c in IDS}
    for p in body["predictions"]:
        assert p["arm"] == expected[p["customer_id"]]
        assert p["served_by"] == p["model_version"] == {"champion": "1", "challenger": "2"}[p["arm"]]
    share = sum(a == "challenger" for a in expected.values()) / len(IDS)
    assert 0.35 < share < 0.65
    ToyResponse.model_validate(body)
    # Sticky: a second request with the items reshuffled lands every customer in the same arm.
    again = rt.handle(ToyRequest(customer_ids=IDS[::-1])).body["predictions"]
    assert all(p["arm"] == expected[p["customer_id"]] for p in again)
    st = rollout.status(settings, MODEL)
    st = st.get("analysis", st)
    assert sum(st["requests"].values()) == 2 * len(IDS)  # every item of both requests logged durably
    assert sum(st["units"].values()) == len(IDS)


def test_single_arm_deployment_serves_only_its_alias(settings, monkeypatch):
    rollout.start(settings, MODEL, actor="test", reason="unit test")
    pinned = Settings(**{**settings.model_dump(), "serving": {**settings.serving.model_dump(), "arm": "challenger"}})
    rt = ServingRuntime(pinned, SPEC)
    body = rt.handle(ToyRequest(customer_ids=IDS[:50])).body
    assert body["arm"] == "challenger" and {p["served_by"] for p in body["predictions"]} == {"2"}


def test_limits_and_client_errors(settings):
    capped = Settings(**{**settings.model_dump(), "serving": {**settings.serving.model_dump(), "max_batch": 10}})
    rt = ServingRuntime(capped, SPEC)
    with pytest.raises(TooLarge, match="customer_ids: 11 items; at most 10") as exc:
        rt.handle(ToyRequest(customer_ids=IDS[:11]))
    assert exc.value.status == 413
    with pytest.raises(RequestError, match="C_BAD") as exc:
        rt.handle(ToyRequest(customer_ids=["C_BAD"]))
    assert exc.value.status == 400 and exc.value.field == "customer_ids"


def test_missing_champion_is_a_clear_startup_error(settings):
    client = tracking.configure(settings)
    client.delete_registered_model_alias(MODEL, tracking.CHAMPION)
    with pytest.raises(RuntimeError, match="no 'champion' version of model 'toy_served'"):
        ServingRuntime(settings, SPEC)


def test_schemas_are_openapi_30():
    schema = ToyRequest.model_json_schema()
    boost = schema["properties"]["boost"]
    assert boost == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True,
                     "default": None, "title": "Boost"}
    assert "'null'" not in str(ToyResponse.model_json_schema())
    assert openapi30({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}) == {"allOf": [{"$ref": "#/x"}], "nullable": True}
    assert openapi30({"type": "file", "format": "binary"}) == {"type": "string", "format": "binary"}


def test_an_unknown_customer_is_one_null_item_with_its_reason() -> None:
    import numpy as np

    from pipelines.models.churn.serving import ChurnResponse
    from pipelines.serving import UNKNOWN_CUSTOMER, FeastPredictor

    items = FeastPredictor.items(["a", "zz", "b"], np.array([0.2, np.nan, 0.9]), "churn_probability")
    assert [i["churn_probability"] for i in items] == [0.2, None, 0.9]
    assert [i["error"] for i in items] == [None, UNKNOWN_CUSTOMER, None]
    # The typed response takes it: null is allowed, a value still has to be a probability.
    ChurnResponse(model="churn", model_version="1", arm="champion", feature_service="churn_v1", predictions=items)
