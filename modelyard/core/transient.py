"""Which failures a retry may fix (a server unreachable, a 5xx), and one line that names the server."""

from __future__ import annotations

import os
from collections.abc import Iterator

from modelyard.core.errors import ModelyardError, TransientError
from modelyard.core.settings import ENV_TRACKING_URI


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The error and those behind it: causes, contexts, and the reason urllib3 keeps aside."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        behind = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        behind += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [e for e in behind if isinstance(e, BaseException)]


def unreachable(exc: BaseException) -> str:
    """How a server failed us, in words: it refused the connection, or it did not answer."""
    refused = any(isinstance(e, ConnectionRefusedError) for e in _causes(exc))
    return "refused the connection" if refused else "did not answer"


def failed_address(exc: BaseException) -> str:
    """host:port of the connection that failed ("" when the error does not say)."""
    from urllib.parse import urlparse

    for error in _causes(exc):
        if (pool := getattr(error, "pool", None)) is not None and getattr(pool, "host", None):
            return f"{pool.host}:{pool.port}" if pool.port else str(pool.host)
        if (request := getattr(error, "request", None)) is not None and getattr(request, "url", None):
            return urlparse(str(request.url)).netloc
    return ""


def transient_message(exc: BaseException) -> str:
    """One line for a transient failure that names the server the step was talking to, or the
    other address it was sent to (a presigned artifact URL names the object store, not MLflow)."""
    from urllib.parse import urlparse

    uri = os.environ.get(ENV_TRACKING_URI, "")
    tracking = uri.startswith(("http://", "https://"))
    address = failed_address(exc)
    if tracking and address and address != urlparse(uri).netloc:
        return (
            f"{address} {unreachable(exc)}: an address MLflow tracking server {uri} sent this client to "
            f"(an artifact download or upload URL); retry later: {exc}"
        )
    server = f"MLflow tracking server {uri}" if tracking else "a server"
    artifacts = " (artifact transfer: check its object store too)" if "/mlflow-artifacts/" in str(exc) else ""
    refused = " (it refused the connection)" if unreachable(exc).startswith("refused") else ""
    return f"{server} is unavailable{refused}{artifacts}, retry later: {exc}"


def is_transient(exc: BaseException) -> bool:
    """True when the error, or one it was raised from, is a connection failure or a 5xx/429."""
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout | Urllib3Error
        ):
            return True
        code = getattr(seen, "error_code", "")
        if code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def as_transient(exc: BaseException) -> BaseException:
    """A connection failure or 5xx as a TransientError naming the server; any other error as it is."""
    if isinstance(exc, ModelyardError) or not is_transient(exc):
        return exc
    return TransientError(transient_message(exc))
