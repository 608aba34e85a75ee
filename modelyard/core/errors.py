"""Exit codes and the project's exceptions; the CLI maps each exception to its exit code once."""

from __future__ import annotations

from enum import IntEnum


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
