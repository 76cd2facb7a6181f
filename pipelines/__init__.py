"""ShopFlow library: plain functions behind the Airflow DAGs, the CLI and the Bento services.

Nothing in this package imports Airflow or opens a connection at import time.
"""

__version__ = "0.1.0"
