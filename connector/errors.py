"""The connector's errors, grouped by what the caller should do next.

Each carries the exit code the CLI uses for it (see docs/cli.md): 2 for
something the user must fix in a file, the config or the store, 3 when the CRM
cannot be reached or refuses the credentials, 4 when another process holds
the store. Messages never contain secrets.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector reports to a person."""

    exit_code = 1


class InputError(ConnectorError):
    """Bad usage, config or input data: fix it and run again."""

    exit_code = 2


class ConfigError(InputError):
    """spm.yaml or the environment is wrong."""


class CalculationError(InputError):
    """The inputs cannot be computed (a zero quota, inconsistent deals, …)."""


class StoreError(InputError):
    """The state store cannot be used as it is: the message says what to do."""


class BusyError(ConnectorError):
    """Another process holds the store or the sync lock: try again later."""

    exit_code = 4


class SyncLockedError(BusyError):
    """Another sync holds the lock; the message says who and since when."""


class LeaseLostError(BusyError):
    """This process's sync lock was taken over (its lease ran out while it was paused or
    cut off): its commit is refused, and the new holder's work stands."""


class StoreBusyError(BusyError):
    """The store's database stayed locked by another process past our wait."""


class CrmError(ConnectorError):
    """The CRM could not be reached, or answered with an error.

    The structure a caller decides by: the HTTP ``status`` (0: no answer), the
    CRM's own error ``code`` (``INVALID_FIELD``, ``VALIDATION_ERROR``, …) and,
    where the CRM names them, the ``object_type`` and ``field`` concerned.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        object_type: str = "",
        field: str = "",
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.object_type = object_type
        self.field = field
        self.detail = detail or message  # the CRM's own words


class CrmAuthError(CrmError):
    """The CRM refused the credentials or the permission: re-authenticate or grant it."""


class CrmUnavailableError(CrmError):
    """The CRM did not answer usefully after retries: try again later."""


class CrmLimitError(CrmError):
    """The CRM's API budget is used up: wait for it to reset."""


class CrmConfigError(CrmError):
    """The CRM answered, and its answer means our settings are wrong (exit 2)."""

    exit_code = 2


class RetryableError(ConnectorError):
    """A transient failure the retry policy may try again (429, 503, lock)."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, status: int = 0, code: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.code = code
