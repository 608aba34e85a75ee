"""modelyard: ML training pipelines built the way DevOps engineers ship software."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelyard")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
