"""Customer lifetime value: how much will a customer spend in the next ``horizon_days`` (up to the data's span)?

Label at cutoff ``c``: the sum of order amounts in the label window after ``c``, for customers with at least one
order by ``c``. Inputs: Feast features (FeatureService ``ltv_v1``) as of each cutoff, point-in-time correct, each
customer's purchase summary at the cutoff, and the BG/NBD + Gamma-Gamma prior fitted on every purchase up to it.
Split by time: training, validation and holdout label windows on the weekly feature snapshots (shorter than the
horizon when three of them do not fit; the prior then carries the forecast to the horizon).

Candidates (:class:`pipelines.models.ltv.regressor.LTVRegressor` kinds): the model (an XGBoost Tweedie correction of
the prior, held to the prior's calibrated total and served as calibrated-total quantile point forecasts), BG/NBD +
Gamma-Gamma, last period's spend and the feast-only ablation; the best on the validation window (MAE) is refit and
registered. Oracle: the generator's expected spend given each customer's hidden rates.

Modules: ``params``, ``data`` (windows, labels, population), ``btyd`` (BG/NBD and Gamma-Gamma), ``regressor`` (the
logged estimator), ``model`` (selection, fit, predict, MLflow), ``baselines``, ``oracle``, ``metrics``,
``evaluation``, ``plots``, ``serving``, ``byo`` (transaction logs for tests and notebooks) and ``spec`` (``SPEC``).
"""

from pipelines.models.ltv.spec import SPEC

__all__ = ["SPEC"]
