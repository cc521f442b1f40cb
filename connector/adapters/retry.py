"""The one retry policy every adapter uses (tenacity), and how a failed connection reads.

Retried: timeouts, dropped connections, and whatever an adapter maps to
:class:`~connector.errors.RetryableError` (HTTP 429 and 5xx, Salesforce's
``UNABLE_TO_LOCK_ROW``, …). Waits grow exponentially with full jitter, except
that a server's ``Retry-After`` is honoured when given. Attempts are bounded;
when they run out the last error is raised as it was.

A connection that cannot be made at all (refused, unknown host) is retried
only briefly, so an unreachable CRM is reported within a few seconds rather
than after a minute of silence; a TLS failure is not retried (it is settings,
not weather). Not retried either: a daily API limit, refused credentials, bad
requests. Retrying those only burns budget or hides a mistake.

Every wait is announced through ``on_wait``, so a person watching sees why
nothing seems to happen.
"""

from __future__ import annotations

import random
import socket
import ssl
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception

from connector.errors import CrmUnavailableError, RetryableError

T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)
CONNECT_ATTEMPTS = 3  # a refused connection: tried this often, about 1.5 s in all
_CONNECT_WAIT_S = 1.0


class Unreachable(StrEnum):
    REFUSED = "refused"
    NO_HOST = "no such host"
    TLS = "tls"
    OTHER = "other"


class ConnectFailure(ConnectionError):
    """No connection could be made at all; ``kind`` says why."""

    def __init__(self, kind: Unreachable, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _causes(error: BaseException) -> list[BaseException]:
    """The chain of errors behind ``error`` (requests → urllib3 → socket), nearest first."""
    seen: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue and len(seen) < 12:
        current = queue.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nxt in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *(a for a in getattr(current, "args", ()) if isinstance(a, BaseException)),
        ):
            if isinstance(nxt, BaseException):
                queue.append(nxt)
    return seen


def connect_failure(error: BaseException) -> ConnectFailure | None:
    """``error`` as a :class:`ConnectFailure` when no connection was made at all, else None."""
    if isinstance(error, ConnectFailure):
        return error
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLError | requests.exceptions.SSLError) or (
            type(cause).__name__ == "SSLError"
        ):
            reason = getattr(cause, "reason", None) or getattr(cause, "verify_message", None)
            return ConnectFailure(Unreachable.TLS, str(reason or "the TLS handshake failed"))
        if isinstance(cause, ConnectionRefusedError):
            return ConnectFailure(Unreachable.REFUSED, "connection refused")
        if isinstance(cause, socket.gaierror):
            return ConnectFailure(Unreachable.NO_HOST, "the host name does not resolve")
    return None


def unreachable(crm: str, url: str, failure: ConnectFailure, setting: str) -> CrmUnavailableError:
    """The message for a CRM we could not connect to: the URL, and a hint that fits the cause."""
    if failure.kind is Unreachable.TLS:
        hint = (
            f"the TLS certificate was not accepted ({failure.detail}); if the CRM (or a "
            "corporate proxy) uses a certificate of its own, point crm.ca_bundle at its CA file"
        )
    elif failure.kind is Unreachable.REFUSED:
        hint = (
            "the connection was refused: nothing listens at that host and port; "
            f"check crm.{setting} and that the service is up"
        )
    elif failure.kind is Unreachable.NO_HOST:
        hint = f"the host name does not resolve; check crm.{setting} and the network"
    else:
        hint = f"{failure.detail}; check crm.{setting} and the network"
    return CrmUnavailableError(f"could not reach {crm} at {url}: {hint}")


def is_retryable(error: BaseException) -> bool:
    failure = connect_failure(error)
    if failure is not None:
        return failure.kind is not Unreachable.TLS
    return isinstance(error, (RetryableError, *_TRANSIENT))


def _what(error: BaseException | None) -> str:
    if error is None:
        return "a failure"
    failure = connect_failure(error)
    if failure is not None:
        return failure.detail
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "…"


class RetryPolicy:
    """Bounded retries with jittered exponential backoff and ``Retry-After``.

    ``sleep`` is injectable so tests run without waiting; ``waited`` adds up
    every pause, for the sync summary ("time spent waiting on rate limits");
    ``on_wait`` hears of each pause before it starts.
    """

    def __init__(
        self,
        attempts: int = 6,
        initial_s: float = 0.5,
        maximum_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.attempts = attempts
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._sleep = sleep
        self._random = random.Random(seed)
        self.on_wait = on_wait
        self.waited = 0.0
        self.retries = 0

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.maximum_s)
        ceiling = min(self.maximum_s, self.initial_s * 2 ** (state.attempt_number - 1))
        if error is not None and connect_failure(error) is not None:
            ceiling = min(ceiling, _CONNECT_WAIT_S)
        return self._random.uniform(0, ceiling)

    def _stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if error is not None and connect_failure(error) is not None:
            return state.attempt_number >= min(CONNECT_ATTEMPTS, self.attempts)
        return state.attempt_number >= self.attempts

    def _before_sleep(self, state: RetryCallState) -> None:
        if self.on_wait is None or state.next_action is None:
            return
        error = state.outcome.exception() if state.outcome else None
        self.on_wait(
            f"{_what(error)}; retrying in {state.next_action.sleep:.1f} s "
            f"(attempt {state.attempt_number + 1} of {self.attempts})"
        )

    def _pause(self, seconds: float) -> None:
        self.waited += seconds
        self.retries += 1
        self._sleep(seconds)

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying transient failures; re-raise the last one."""
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self._pause,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(operation)


def call_crm(
    retry: RetryPolicy,
    attempt: Callable[[], T],
    *,
    crm: str,
    url: str,
    setting: str,
    describe: Callable[[OSError], str] = str,
) -> T:
    """One CRM call through ``retry``, the one wrapper both adapters' calls go through.

    A transient failure that outlasts every attempt, a connection never made, or a
    connection that broke becomes one :class:`CrmUnavailableError` naming the CRM,
    its URL and the setting to check (``crm.<setting>``); ``describe`` words a
    broken connection. Anything else ``attempt`` raises (already ours) passes.
    """
    try:
        return retry.call(attempt)
    except RetryableError as error:
        raise CrmUnavailableError(
            f"{crm} at {url} kept failing after {retry.attempts} attempts: {error}",
            status=error.status,
            code=error.code,
        ) from None
    except ConnectFailure as failure:
        raise unreachable(crm, url, failure, setting) from None
    except OSError as error:  # requests' errors are OSErrors too
        cause = connect_failure(error)
        if cause is not None:
            raise unreachable(crm, url, cause, setting) from None
        raise CrmUnavailableError(
            f"could not reach {crm} at {url}: {describe(error)}; check crm.{setting} "
            "and the network"
        ) from None
