"""Churn: will a customer with purchase history place no order in the next ``horizon_days``?

Label at cutoff ``c``: no order in ``(c, c + horizon]``, for customers with at least one order by ``c``.
Features come from Feast (FeatureService ``churn_v1``) as of each cutoff, point-in-time correct.
Customer attributes (every further column of the customers table, :mod:`pipelines.data.attributes`) are features
too; with a provided ``churned`` label they suffice (no orders needed). Split by time: several earlier cutoffs train
the model, the last cutoff whose label window fits the data is the holdout (provided labels: a stratified random
holdout). Candidates: XGBoost and a logistic regression on all columns, picked on a validation split carved out of
the training part; the winner is refit and registered. Oracle: the generator's true churn probability given each
customer's hidden purchase rate, churn hazard and whether they are still alive.

Modules: ``params`` (hyper-parameters), ``data`` (labels, features, attributes, splits), ``model`` (candidates,
selection, per-customer holdout and AUC), ``flavor`` (MLflow pyfunc with the attribute table), ``oracle``,
``evaluation``, ``plots``, ``serving`` and ``spec`` (the family's ``SPEC``).
"""

from pipelines.models.churn.spec import SPEC

__all__ = ["SPEC"]
