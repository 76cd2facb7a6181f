"""Logging and loading a forecaster with MLflow: the network with the native PyTorch flavor, a statistical winner as
a ``pyfunc`` model; both carry the forecaster's metadata, and what was logged is checked to forecast like what was
trained before anything is registered."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.models.forecasting.data import ForecastData
from pipelines.models.forecasting.model import NETWORK, Forecaster, forecast
from pipelines.utils import pinned_requirements


def export_arguments(model: Forecaster, data: ForecastData) -> dict[str, Any]:
    """Keyword arguments of ``mlflow.pytorch.log_model``/``save_model`` for a forecaster.

    The network is saved as a ``torch.export`` program (MLflow's default, pickle-free format) from a CPU copy;
    the packed-input example fixes the input width and the batch dimension stays dynamic. ``model.meta``
    (product ids, lags, horizon, frequency) becomes the MLflow model's metadata, which :func:`load_model`
    reads back.
    """
    import copy

    import torch
    from mlflow.models import infer_signature

    from pipelines.models.forecasting.net import pack_inputs

    net = copy.deepcopy(model.net).to("cpu").eval()
    # At least two rows: an example batch of one makes torch.export specialise the batch dimension to 1, and the
    # loaded model then fails every other batch size (`Guard failed: x.size()[0] == 1`, a one-series shop).
    n = min(5, len(data.panel.product_ids))
    rows = np.resize(np.arange(n), max(2, n))
    example = pack_inputs(data.panel.units, data.panel.price, data.calendar,
                          model.product_index(data.panel.product_ids), rows,
                          np.full(len(rows), data.origins[-1]), int(model.meta["lags"]), int(model.meta["horizon"]))
    with torch.no_grad():
        output = net(torch.from_numpy(example)).numpy()
    requirements = pinned_requirements("torch", "numpy", "mlflow")
    return {"pytorch_model": net, "signature": infer_signature(example, output), "input_example": example,
            "metadata": model.meta, "pip_requirements": requirements}


def log_model(model: Forecaster, data: ForecastData):
    """Log the selected forecaster and check that what was logged loads back and forecasts the same.

    The network goes with the native PyTorch flavor (see :func:`export_arguments`); a statistical winner, which
    is a procedure plus a few numbers, as a ``pyfunc`` model (:mod:`pipelines.models.forecasting.pyfunc`). Both
    carry ``model.meta`` as the MLflow model's metadata. A logged model that does not forecast like the trained
    one fails the run here, before anything is registered.
    """
    import mlflow

    if model.method == NETWORK:
        info = mlflow.pytorch.log_model(name="model", **export_arguments(model, data))
    else:
        from pipelines.models.forecasting.pyfunc import StatisticalForecaster

        info = mlflow.pyfunc.log_model(name="model", python_model=StatisticalForecaster(model.meta),
                                       metadata=model.meta,
                                       pip_requirements=pinned_requirements("numpy", "pandas", "mlflow"))
    check_round_trip(model, load_model(info.model_uri), data)
    return info


def check_round_trip(trained: Forecaster, loaded: Forecaster, data: ForecastData) -> None:
    """Raise unless ``loaded`` forecasts like ``trained`` from one origin and from several (batch sizes the
    export may have fixed), including past the end of the data."""
    for origins in ([data.origins[-1]], [*data.origins, data.panel.n_periods]):
        want, got = forecast(trained, data, origins), forecast(loaded, data, origins)
        if not np.allclose(want, got, rtol=1e-4, atol=1e-4):
            raise RuntimeError(f"the logged forecasting model does not reproduce the trained one from origins "
                               f"{origins} (max difference {np.abs(want - got).max():.3g})")


def load_model(uri: str) -> Forecaster:
    """Load a logged forecaster (any model URI or path): the exported network, or the statistical candidate
    named in the metadata."""
    import mlflow
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(uri)
    meta = dict(Model.load(local).metadata)
    if meta.get("method", NETWORK) != NETWORK:
        return Forecaster(net=None, meta=meta)
    return Forecaster(net=mlflow.pytorch.load_model(local), meta=meta)
