"""BentoML services over the MLflow registry and the Feast online store."""
