"""The one exception the storage layer raises for problems an operator must fix, and
the one a worker meets when its claim on a follow-up was taken over."""

from dialogs.store import ClaimLost


class StorageError(Exception):
    """The database cannot be opened or used as configured (bad path, corrupt file, …)."""


class FollowUpNotClaimed(StorageError, ClaimLost):
    """A write meant for a claimed follow-up found it in another status."""
