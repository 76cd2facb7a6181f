"""Demand forecasting: units per product over the next ``horizon`` periods, as P10 / P50 / P90.

Data: the ``daily_sales`` table (units and selling price per product and period) turned into a dense panel; the
frequency (daily for generated shops; weekly, monthly or quarterly for imported sales) is inferred from the
dates and sets the seasonal period, the default horizon (28 days, 8 weeks, 6 months, 4 quarters) and the lag
window. Covariates: the lag window of units and prices, the product (an embedding), the calendar (day of week,
day of year) and the *future* prices of the horizon, which are fair to use because the shop sets them.

Candidates: one global PyTorch network for all products (:mod:`pipelines.models.forecasting.net`) trained with the
pinball loss, price acting through a learnt log-log demand curve; and the statistical baselines, seasonal naive and
ETS (:mod:`pipelines.models.forecasting.candidates`). ``fit`` picks the one with the lowest MASE on a validation
backtest just before the holdout, calibrates its P10/P90 on its validation residuals
(:mod:`pipelines.models.forecasting.conformal`), and refits a winning network on every window before the holdout;
the winner is what is registered and served. The holdout: ``n_origins`` rolling origins at the end of the history.
Oracle (generated data only): Poisson noise around the generator's true mean demand at the realised prices.
Metrics: MASE (primary; per series, the gate's unit, then the mean), WAPE, weighted quantile loss, P10-P90 coverage.

Feast: the family declares ``forecasting_v1`` for lineage, but reads ``daily_sales`` directly, because it needs
the whole lag window and the future prices, not the 7/28-day aggregates of the ``product_sales`` view.

Modules: ``params``, ``panel`` (sales table -> regular panel), ``data`` (backtest layout), ``net`` (the network,
torch), ``smoothing`` and ``candidates`` (statistical candidates), ``conformal``, ``model`` (selection, forecast,
holdout frames, score), ``flavor`` and ``pyfunc`` (MLflow), ``baselines``, ``oracle``, ``metrics``,
``evaluation``, ``plots``, ``serving`` and ``spec`` (the family's ``SPEC``). Only ``net`` imports torch and only
``pyfunc`` MLflow at module level.
"""

from pipelines.models.forecasting.spec import SPEC

__all__ = ["SPEC"]
