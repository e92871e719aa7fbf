"""Exception types.  A leaf module: imports nothing from the package."""

from __future__ import annotations


class VoiceDaemonError(Exception):
    """Base of every error this program reports to a user."""

    exit_code = 1


class InputError(VoiceDaemonError):
    """The input file cannot be converted (missing, empty, not audio, too long…).

    Not worth retrying: the same bytes fail the same way.  ``stage`` names the
    pipeline stage that found it (decode, plan, engine, encode).
    """

    exit_code = 65  # EX_DATAERR
    retryable = False

    def __init__(self, path, cause: str, stage: str = "decode"):
        self.path, self.cause, self.stage = str(path), cause, stage
        super().__init__(f"{self.path}: {cause}")


class OutputError(VoiceDaemonError):
    """The output cannot be written where asked (bad extension, unwritable folder)."""

    exit_code = 73  # EX_CANTCREAT
    retryable = False

    def __init__(self, path, cause: str):
        self.path, self.cause = str(path), cause
        super().__init__(f"{self.path}: {cause}")


class OutputCheckError(VoiceDaemonError):
    """The output was written but failed its check before publishing (cut short, not finite, silent…).

    An attempt that failed, worth retrying (a flaky disk, encoder or worker), never a published file."""

    exit_code = 73  # EX_CANTCREAT: the output could not be made as it must be
    retryable = True

    def __init__(self, path, cause: str):
        self.path, self.cause = str(path), cause
        super().__init__(f"{self.path}: the output failed its check before publishing: {cause}")


class ModelError(VoiceDaemonError):
    """A model is missing or cannot be loaded: a configuration problem, not a crash to retry."""

    exit_code = 78  # EX_CONFIG
    retryable = False


class TaskError(VoiceDaemonError):
    """A task failed inside a worker (an exception, or the worker died on every attempt)."""

    retryable = True

    def __init__(self, message: str, *, kind: str = "exception", attempts: int = 1,
                 stage: str = "", retryable: bool = True):
        self.kind, self.attempts, self.stage, self.retryable = kind, attempts, stage, retryable
        super().__init__(message)


class PoolStartError(VoiceDaemonError):
    """Workers could not start (usually: their models failed to load)."""

    exit_code = 78


class UsageError(VoiceDaemonError):
    """A command's own arguments are wrong in a way argparse cannot check (exit 2, as argparse)."""

    exit_code = 2  # EX_USAGE as argparse uses it


class AlreadyRunningError(VoiceDaemonError):
    """Another voice-daemon holds the state folder's lock."""


class PoolClosedError(RuntimeError):
    """A task was submitted to a worker pool that is closing or closed.

    A RuntimeError, as it always was; its own type so a caller can tell "the pool is
    being stopped" from a failure of the task."""
