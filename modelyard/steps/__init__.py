"""The pipeline steps: plain functions over local files and MLflow; no CLI, no Argo, no Docker."""
