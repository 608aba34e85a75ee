"""The minimum useful work, in one file: load iris, fit, log, register. The pipeline's yardstick."""

import sys
from pathlib import Path

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

store = Path(sys.argv[1]).resolve()
mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
mlflow.set_experiment("minimal")
features, labels = load_iris(return_X_y=True, as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels)
with mlflow.start_run():
    mlflow.sklearn.log_model(
        model, name="model", registered_model_name="minimal", pip_requirements=["scikit-learn"]
    )
mlflow.MlflowClient().set_registered_model_alias("minimal", "champion", "1")
