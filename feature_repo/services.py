"""Feature services: the exact feature set a model version is trained and served with.

Naming: each model family gets ``<model>_v<N>``; a new service version is added (never edited in place) when a
family's inputs change, so registered models keep resolving the features they were trained on.
"""

from feast import FeatureService

from views import customer_activity, customer_category_mix, customer_rfm, product_sales

churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_rfm, customer_activity, customer_category_mix],
    description="Churn classifier inputs: RFM, recent activity and category mix of a customer.",
    tags={"model": "churn"},
)

recommendation_v1 = FeatureService(
    name="recommendation_v1",
    features=[customer_activity, customer_category_mix],
    description="Recommendation context: recent activity and category mix (cold-start fallback and re-ranking).",
    tags={"model": "recommendation"},
)

ltv_v1 = FeatureService(
    name="ltv_v1",
    features=[customer_rfm, customer_activity, customer_category_mix],
    description="Lifetime-value regressor inputs: RFM, recent activity and category mix of a customer.",
    tags={"model": "ltv"},
)

forecasting_v1 = FeatureService(
    name="forecasting_v1",
    features=[product_sales],
    description="Demand forecasting covariates: recent price, units and views of a product.",
    tags={"model": "forecasting"},
)

pricing_v1 = FeatureService(
    name="pricing_v1",
    features=[product_sales],
    description="Dynamic pricing context: recent price, units and views of a product.",
    tags={"model": "pricing"},
)

vision_v1 = FeatureService(
    name="vision_v1",
    features=[product_sales],
    description="Visual search re-ranking signals: recent popularity of a product.",
    tags={"model": "vision"},
)
