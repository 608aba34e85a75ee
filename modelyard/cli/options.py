"""Options several commands share, apart from `main` so that command modules can import them."""

from __future__ import annotations

import click

from modelyard.core.settings import ENV_TRACKING_URI

tracking_option = click.option(
    "--tracking-uri",
    envvar=ENV_TRACKING_URI,
    help="MLflow tracking server or store [default: embedded SQLite under .modelyard/]",
)
