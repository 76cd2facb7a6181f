"""Deployment on Kubernetes: manifests of the model servers, generated from the model registry (``k8s.py``), and
of the platform: MLflow server, Airflow, KFP upload (``platform.py``, checked by ``platform_check.py``)."""
