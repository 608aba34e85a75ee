"""Runners execute the pipeline DAG (modelyard.contract.dag) on this machine."""
