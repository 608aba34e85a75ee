"""Serving a registered model version over HTTP: MLflow's scoring server, named by version."""
