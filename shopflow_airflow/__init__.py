"""Airflow-side glue that needs Airflow's own modules (the library, ``pipelines``, never imports Airflow).

Run inside Airflow's environment (``pipelines.orchestration.airflow_env``) as a child process.
"""
