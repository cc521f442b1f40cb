"""The one retry policy every adapter uses (tenacity).

Retried: connection errors, timeouts, and whatever an adapter maps to
:class:`~connector.errors.RetryableError` (HTTP 429 and 5xx, Salesforce's
``UNABLE_TO_LOCK_ROW``, …). Waits grow exponentially with full jitter, except
that a server's ``Retry-After`` is honoured when given. Attempts are bounded;
when they run out the last error is raised as it was.

Not retried, by design: a daily API limit (``CrmLimitError``), refused
credentials, bad requests. Retrying those only burns budget or hides a
mistake.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connector.errors import RetryableError

T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, (RetryableError, *_TRANSIENT))


class RetryPolicy:
    """Bounded retries with jittered exponential backoff and ``Retry-After``.

    ``sleep`` is injectable so tests run without waiting; ``waited`` adds up
    every pause, for the sync summary ("time spent waiting on rate limits").
    """

    def __init__(
        self,
        attempts: int = 6,
        initial_s: float = 0.5,
        maximum_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.attempts = attempts
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._sleep = sleep
        self._random = random.Random(seed)
        self.waited = 0.0
        self.retries = 0

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.maximum_s)
        ceiling = min(self.maximum_s, self.initial_s * 2 ** (state.attempt_number - 1))
        return self._random.uniform(0, ceiling)

    def _pause(self, seconds: float) -> None:
        self.waited += seconds
        self.retries += 1
        self._sleep(seconds)

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying transient failures; re-raise the last one."""
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.attempts),
            sleep=self._pause,
            reraise=True,
        )
        return retrying(operation)
