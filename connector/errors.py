"""The connector's errors, grouped by what the caller should do next.

Each carries the exit code the CLI uses for it (see cli.md): 2 for something
the user must fix in a file or the config, 3 when the CRM cannot be reached or
refuses the credentials, 1 when a run finished with records left unwritten.
Messages never contain secrets.
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


class CrmError(ConnectorError):
    """The CRM could not be reached or refused us."""

    exit_code = 3


class CrmAuthError(CrmError):
    """The CRM refused the credentials: re-authenticate."""


class CrmUnavailableError(CrmError):
    """The CRM did not answer usefully after retries: try again later."""


class CrmLimitError(CrmError):
    """The CRM's API budget is used up: wait for it to reset."""


class RetryableError(ConnectorError):
    """A transient failure the retry policy may try again (429, 503, lock)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PartialWriteError(ConnectorError):
    """The run finished, but some records could not be written."""

    exit_code = 1


class SyncLockedError(ConnectorError):
    """Another sync holds the lock: wait for it."""

    exit_code = 1
