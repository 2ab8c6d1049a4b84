"""Exceptions of the rotator. Messages name versions and resources, never a secret value.

A step that raises fails the invocation: Secrets Manager then marks the rotation failed and
retries it from createSecret with the same ClientRequestToken.
"""

from __future__ import annotations


class RotationError(Exception):
    """A rotation step or the prune could not do its job."""


class RotationNotEnabledError(RotationError):
    """The guard: Secrets Manager rotation is not enabled on the secret."""


class UnknownVersionError(RotationError):
    """The guard: the ClientRequestToken is not a version of the secret with a stage."""


class NotPendingError(RotationError):
    """The guard: the token's version is neither AWSCURRENT nor AWSPENDING."""


class WrongSecretError(RotationError):
    """The event names a secret other than the one this function rotates."""


class MissingValueError(RotationError):
    """A version the step needs has no value (e.g. setSecret before createSecret)."""


class PatternSetMismatchError(RotationError):
    """The pattern set does not accept a value the step requires it to accept."""


class PatternSetConflictError(RotationError):
    """The pattern set kept changing under us (WAFOptimisticLockException) past the bound."""


class StaleLockTokenError(Exception):
    """The pattern set changed since it was read (adapter signal, retried by the steps)."""


class PatternSetUnavailableError(RotationError):
    """WAF could not be read or written."""


class SecretStoreUnavailableError(RotationError):
    """Secrets Manager could not be read or written."""


class CanaryFailedError(RotationError):
    """A real token request carrying the pending value did not succeed within the bound."""


class UnsupportedEventError(RotationError):
    """The invocation is neither a Secrets Manager rotation step nor the prune event."""
