"""What modelyard talks to: MLflow runs and the registry, its server app, alert webhooks."""
