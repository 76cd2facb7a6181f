"""Run cards: one HTML page per pipeline run linking its batch, Data Docs, drift, models, aliases and rollouts.

``card`` collects a run's facts into JSON (``<home>/reports/runs/<run>.json``) and renders them; ``server`` serves
the cards, the GX Data Docs and the monitoring reports beside the Airflow and MLflow UIs (``shopflow ui``).
"""
