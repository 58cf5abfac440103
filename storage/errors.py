"""The one exception the storage layer raises for problems an operator must fix."""


class StorageError(Exception):
    """The database cannot be opened or used as configured (bad path, corrupt file, …)."""
