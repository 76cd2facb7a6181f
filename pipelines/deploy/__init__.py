"""Deployment of the model servers: Kubernetes manifests generated from the model registry (see ``k8s.py``)."""
