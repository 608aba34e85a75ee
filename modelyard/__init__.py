"""modelyard: ML training pipelines built the way DevOps engineers ship software."""

import os
from importlib.metadata import PackageNotFoundError, version

# MLflow imports GitPython, which warns at every import when there is no git binary (a trainer
# image has none); set before MLflow is imported anywhere in the package.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

try:
    __version__ = version("modelyard")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
