"""Foundations: exit codes, errors, signals and the environment a step reads. Imports nothing else of modelyard."""
