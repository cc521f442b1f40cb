"""The shared retry policy: what it retries, how long it waits, when it stops."""

from __future__ import annotations

import pytest
import requests

from connector.adapters.retry import RetryPolicy
from connector.errors import CrmAuthError, CrmLimitError, RetryableError


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def policy(**kwargs: object) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    return RetryPolicy(sleep=slept.append, seed=1, **kwargs), slept  # type: ignore[arg-type]


def test_transient_errors_are_retried_until_success() -> None:
    retry, slept = policy()
    flaky = Flaky(
        [requests.ConnectionError("reset"), requests.Timeout("slow"), RetryableError("503")]
    )
    assert retry.call(flaky) == "done"
    assert flaky.calls == 4
    assert len(slept) == 3 and retry.retries == 3
    assert retry.waited == pytest.approx(sum(slept))


def test_backoff_grows_and_is_bounded() -> None:
    retry, slept = policy(attempts=8, initial_s=1.0, maximum_s=4.0)
    flaky = Flaky([RetryableError("503") for _ in range(7)])
    retry.call(flaky)
    ceilings = [1, 2, 4, 4, 4, 4, 4]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(slept, ceilings, strict=True))


def test_retry_after_is_honoured() -> None:
    retry, slept = policy()
    retry.call(Flaky([RetryableError("429", retry_after=7.5)]))
    assert slept == [7.5]


def test_attempts_are_bounded_and_last_error_raised() -> None:
    retry, slept = policy(attempts=3)
    flaky = Flaky([RetryableError(f"503 #{i}") for i in range(5)])
    with pytest.raises(RetryableError, match="503 #2"):
        retry.call(flaky)
    assert flaky.calls == 3 and len(slept) == 2


@pytest.mark.parametrize(
    "error", [CrmLimitError("daily limit"), CrmAuthError("bad token"), ValueError("bug")]
)
def test_permanent_errors_are_not_retried(error: Exception) -> None:
    retry, slept = policy()
    flaky = Flaky([error])
    with pytest.raises(type(error)):
        retry.call(flaky)
    assert flaky.calls == 1 and slept == []
