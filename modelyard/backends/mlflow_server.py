"""The MLflow tracking server as the chart runs it: `mlflow server --app-name modelyard`
(`MLFLOW_APP_NAME=modelyard` in images/mlflow).

MLflow's own server with one change: it never tells a client to move artifacts through presigned
object-store URLs. Such a URL names the object store as the server reaches it (in the cluster,
`modelyard-minio.<namespace>.svc`), which a laptop behind `kubectl port-forward` or an Ingress
cannot reach. The server proxies artifacts anyway (`--artifacts-destination`), so every client,
modelyard or a plain MLflow one, reads and writes them through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# Where MLflow clients learn the server's capabilities: <prefix>/api/3.0/mlflow/server-info (and
# the UI's /ajax-api/3.0/... twin).
SERVER_INFO_PATH: Final = "/mlflow/server-info"


class ProxiedArtifactsOnly:
    """MLflow's ASGI app, its server-info saying no multipart (presigned) downloads or uploads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).endswith(SERVER_INFO_PATH):
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        payload = await run_in_threadpool(server_info)
        await JSONResponse(payload)(scope, receive, send)


def server_info() -> dict[str, Any]:
    from mlflow.server.handlers import build_server_info_payload
    from mlflow.utils.server_info import (
        SERVER_INFO_MULTIPART_DOWNLOADS_ENABLED,
        SERVER_INFO_MULTIPART_UPLOADS_ENABLED,
    )

    return build_server_info_payload() | {
        SERVER_INFO_MULTIPART_DOWNLOADS_ENABLED: False,
        SERVER_INFO_MULTIPART_UPLOADS_ENABLED: False,
    }


def create_app() -> ASGIApp:
    """The app factory `mlflow server --app-name modelyard` hands to uvicorn (`--factory`)."""
    from mlflow.server.fastapi_app import app

    return ProxiedArtifactsOnly(app)
