"""MLflow's own scoring server (`/invocations`, `/ping`, `/health`, `/version`) for one model
version, every response of which names that version in a header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import mlflow.pyfunc
from fastapi import FastAPI, Request, Response
from mlflow.pyfunc import scoring_server

from modelyard.contract.serving import MODEL_VERSION_HEADER


def scoring_app(model_uri: str, version: str) -> FastAPI:
    """Load the model and build the server's app; the caller runs it (uvicorn)."""
    app: FastAPI = scoring_server.init(mlflow.pyfunc.load_model(model_uri))

    # Added after MLflow's own middleware, so outside it: its 504s carry the header too.
    @app.middleware("http")
    async def name_the_version(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers[MODEL_VERSION_HEADER] = version
        return response

    return app
