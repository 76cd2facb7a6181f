"""Building blocks of the demand forecasting family (``pipelines.models.forecasting``).

* :mod:`pipelines.forecast.data`: sales table -> regular (products x periods) panel, frequency inference,
  calendar covariates.
* :mod:`pipelines.forecast.net`: the global quantile network, its packed input layout and training loop (torch).
* :mod:`pipelines.forecast.baselines`: seasonal-naive and additive Holt-Winters forecasts.
* :mod:`pipelines.forecast.metrics`: MASE, WAPE, weighted quantile loss and interval coverage over a backtest.

Only :mod:`~pipelines.forecast.net` imports torch, so the others stay cheap to import.
"""
