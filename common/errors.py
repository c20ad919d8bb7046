"""The project's error hierarchy: one base class, a few specific kinds, messages that name the thing.

Every message says what was expected and what was found. Only ``main`` functions turn these into
exit codes; library code raises and never calls ``sys.exit``.
"""

from __future__ import annotations


class LedgerlaneError(Exception):
    """Base class for every error ledgerlane raises on purpose."""

    exit_code = 1


class ConfigError(LedgerlaneError):
    """A configuration file, key, value or missing secret."""

    exit_code = 2


class EnvironmentProblem(LedgerlaneError):
    """The machine lacks something ledgerlane needs (a JDK, a binary, a free port)."""

    exit_code = 3


class ServiceError(LedgerlaneError):
    """A local service (Kafka, PostgreSQL) could not be started, reached or stopped."""

    exit_code = 4


class IdentityError(LedgerlaneError):
    """A subject key is missing, empty or a placeholder such as 'unknown'."""

    exit_code = 5


class IdempotencyConflict(LedgerlaneError):
    """An idempotency key was reused with different content, or an app id with a new checkpoint."""

    exit_code = 6


class UncertifiedProductError(LedgerlaneError):
    """A data product has no PASS certification that a reader may use."""

    exit_code = 7


class ClosureFailed(LedgerlaneError):
    """A run's closure found a proof missing or not reconciling."""

    exit_code = 8


class NotCaughtUp(LedgerlaneError):
    """A stream did not reach the run's basis end offsets."""

    exit_code = 9


class StateDrift(LedgerlaneError):
    """State the platform cannot vouch for: a replaced checkpoint, a recreated or truncated topic,
    a rewritten history. Nothing is written; the message says what changed and what to do."""

    exit_code = 10


class LockHeld(LedgerlaneError):
    """Another process holds the lock (a checkpoint's runner, a run's closer); the message names it."""

    exit_code = 11


class JobRunFailed(LedgerlaneError):
    """A job run on EMR Serverless ended FAILED or CANCELLED; its driver's output was printed above."""

    exit_code = 12


class StillRunning(LedgerlaneError):
    """Waiting for a job run ended before the run did; it goes on, and its id is named to watch it."""

    exit_code = 13
