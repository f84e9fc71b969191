"""Every test runs offline, quiet and with its own image cache."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    os.environ["MASKCTL_CACHE_DIR"] = str(tmp_path_factory.mktemp("image-cache"))


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory):
    """An empty MLflow SQLite store, made once: each new store runs MLflow's table migrations
    (5-10 s on two busy cores). Copy it to RUNS/mlflow.db before a run logs to MLflow."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path
