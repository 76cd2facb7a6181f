"""Feature services: the exact feature set a model version is trained and served with.

Naming: each model family gets ``<model>_v<N>``; a new service version is added (never edited in place) when a
family's inputs change, so registered models keep resolving the features they were trained on.
"""

from feast import FeatureService

from views import customer_activity, customer_category_mix, customer_rfm

churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_rfm, customer_activity, customer_category_mix],
    description="Churn classifier inputs: RFM, recent activity and category mix of a customer.",
    tags={"model": "churn"},
)
