"""Kubeflow Pipelines: the same steps as the Airflow DAGs, generated from the model registry.

``components`` wraps the plain step functions of :mod:`pipelines.steps` as ``@dsl.component``s (thin: each imports
and calls one function), ``pipelines`` builds the data pipeline and one training pipeline per family, ``submit``
talks to a KFP API server for Airflow's ``kfp`` training backend. Nothing here runs at import.
"""
