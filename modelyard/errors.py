"""Exit codes and the project's exceptions; the CLI maps each exception to its exit code once."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from types import FrameType


class ExitCode(IntEnum):
    """Process exit codes shared by every step, the CLI and the Argo retry policy."""

    OK = 0
    FAILURE = 1  # an unexpected error: a bug, report it
    BAD_INPUT = 2  # bad data or config: fix the input, a retry cannot help
    REJECTED = 3  # --strict only: the challenger failed a quality gate
    TRANSIENT = 75  # EX_TEMPFAIL (sysexits.h): a server was unreachable, retry later
    TIMEOUT = 124  # as timeout(1): a step ran past its deadline (the Docker runner stopped it)
    INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
    TERMINATED = 143  # 128 + SIGTERM: docker stop, the kubelet, a cancelled CI job


class ModelyardError(Exception):
    """Base of the errors the CLI reports as one line, without a traceback."""

    exit_code: ExitCode = ExitCode.FAILURE


class BadInputError(ModelyardError):
    """The dataset, config or arguments are wrong; the message says what and how to fix it."""

    exit_code = ExitCode.BAD_INPUT


class TransientError(ModelyardError):
    """A dependency (MLflow server, object store) failed in a way a retry may fix."""

    exit_code = ExitCode.TRANSIENT


class DeadlineError(ModelyardError):
    """A step ran past the deadline its contract gives it; a retry would only run as long."""

    exit_code = ExitCode.TIMEOUT


class RejectedError(ModelyardError):
    """The challenger was rejected and the caller asked for a non-zero exit (--strict)."""

    exit_code = ExitCode.REJECTED


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt: `except Exception` lets it pass."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    def __reduce__(self) -> tuple[type[Interrupted], tuple[int]]:  # from a worker process to its parent
        return Interrupted, (self.signum,)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def stop_signals_raise() -> None:
    """SIGINT and SIGTERM raise Interrupted in the main thread, so `finally` blocks close what is open."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupted)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (e.g. a model version and its aliases), then raise.
    Outside the main thread, where no signal handler runs, it holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda s, _: held.append(s)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        raise Interrupted(held[0])


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

    from modelyard.contract import ENV_TRACKING_URI  # here: the contract is built on this module

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
