"""Monitoring: data drift, prediction drift and live performance of the champions (no Airflow imports here).

``reference`` stores a sample of each model version's training features; ``served`` is the bounded log of served
requests each service keeps; ``stats`` holds the drift statistics; ``monitor`` runs the checks, ``report`` renders
the HTML page and ``store`` records each run.
"""
