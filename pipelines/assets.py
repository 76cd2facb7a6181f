"""Names of the data assets that link the DAGs (plain strings: the library does not import Airflow)."""


def features_asset_uri(feature_service: str) -> str:
    """Asset updated when the features behind ``feature_service`` were rebuilt and materialized."""
    return f"shopflow://features/{feature_service}"


VALIDATED_BATCH_URI = "shopflow://data/validated-batch"


def retrain_asset_uri(model: str) -> str:
    """Asset the monitor updates when ``model``'s champion breached its thresholds (``monitor.retrain_on_breach``);
    the model's training DAG is scheduled on it as well as on its features."""
    return f"shopflow://monitoring/retrain/{model}"
