"""Runners execute the pipeline DAG (modelyard.pipeline) on this machine."""
