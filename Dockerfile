# The ShopFlow platform image: the Airflow servers and the KubernetesExecutor's task pods, the MLflow tracking
# server, the KFP upload Job (all in k8s/platform, `shopflow k8s render`) and every Kubeflow Pipelines component
# (`SHOPFLOW_KFP__IMAGE`) run it.
# The model servers are Bentos (`shopflow build MODEL`, docs/deploy.md section 2), not this image.
#
#   docker build -t registry.example.com/shopflow/shopflow:0.1.0 .
#
# The project is installed editable from /opt/shopflow, so `feature_repo/` and `dags/` sit beside the package
# where the code resolves them (pipelines.settings.PROJECT_ROOT); a plain `pip install .` would leave them out.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SHOPFLOW_PROFILE=production \
    SHOPFLOW_HOME=/tmp/shopflow \
    AIRFLOW_HOME=/tmp/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/shopflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache

# libgomp: xgboost and faiss; tini reaps the task processes Airflow and KFP start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/shopflow
# The pinned stack first: this layer is reused while only the code changes.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p pipelines model_serving && touch pipelines/__init__.py model_serving/__init__.py \
    && pip install -c constraints.txt -e . \
    && pip uninstall -y shopflow
COPY pipelines/ pipelines/
COPY model_serving/ model_serving/
COPY feature_repo/ feature_repo/
COPY dags/ dags/
RUN pip install --no-deps -c constraints.txt -e . \
    && python -c "from pipelines.features.store import FEATURE_REPO; assert (FEATURE_REPO / 'views.py').is_file()" \
    && python -c "from pipelines.orchestration import DAGS_FOLDER; assert (DAGS_FOLDER / 'shopflow_data.py').is_file()"

# The Airflow chart's default uid; the home is scratch (an emptyDir in a pod): the stores hold the state.
RUN useradd --uid 50000 --gid 0 --home-dir /tmp --no-create-home shopflow
USER 50000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["shopflow", "--help"]
