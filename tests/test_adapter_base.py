"""The mechanics both adapters share: one Pager, one BatchWriter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from connector.adapters.base import NOT_SENT, BatchWriter, Pager
from connector.adapters.retry import RetryPolicy
from connector.core.models import RecordUpdate, WriteResult
from connector.errors import CrmUnavailableError, RetryableError


def no_wait() -> RetryPolicy:
    return RetryPolicy(attempts=3, sleep=lambda _seconds: None, seed=1)


def test_the_pager_follows_cursors_lazily_until_there_is_none() -> None:
    pages = {None: ([1, 2], "a"), "a": ([3], "b"), "b": ([4, 5], None)}
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> tuple[list[int], str | None]:
        asked.append(cursor)
        return pages[cursor]

    records = iter(Pager("listing", fetch))
    assert asked == []  # nothing is read before the first record is wanted
    assert next(records) == 1
    assert asked == [None]
    assert list(records) == [2, 3, 4, 5]
    assert asked == [None, "a", "b"]


def test_a_cursor_answered_twice_stops_the_listing_with_an_error_naming_it() -> None:
    pages = {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "a")}
    records: list[int] = []
    with pytest.raises(CrmUnavailableError, match=r"HubSpot /crm/v3/owners.*'a'.*forever"):
        records.extend(Pager("HubSpot /crm/v3/owners", lambda cursor: pages[cursor]))
    assert records == [1, 2, 3]  # what was read before the loop showed is kept


def updates(*ids: str) -> list[RecordUpdate]:
    return [RecordUpdate(record_id, {"commission": "1.00"}) for record_id in ids]


def test_the_writer_batches_and_resends_only_the_busy_records() -> None:
    sent: list[list[str]] = []
    busy_once = {"b"}

    def send(batch: Sequence[RecordUpdate]) -> Mapping[str, WriteResult]:
        sent.append([u.record_id for u in batch])
        results = {}
        for update in batch:
            if update.record_id in busy_once:
                busy_once.discard(update.record_id)
                results[update.record_id] = WriteResult(update.record_id, False, "LOCKED", "busy")
            elif update.record_id == "c":
                results[update.record_id] = WriteResult(update.record_id, False, "INVALID", "no")
            else:
                results[update.record_id] = WriteResult(update.record_id, True)
        return results

    results = BatchWriter(2, no_wait(), busy={"LOCKED"}).write(updates("a", "b", "c"), send)
    assert sent == [["a", "b"], ["b"], ["c"]]  # the invalid record is not sent again
    assert {k: (r.ok, r.code) for k, r in results.items()} == {
        "a": (True, ""),
        "b": (True, ""),
        "c": (False, "INVALID"),
    }


def test_a_record_still_busy_after_every_attempt_keeps_its_busy_result() -> None:
    calls = 0

    def send(batch: Sequence[RecordUpdate]) -> Mapping[str, WriteResult]:
        nonlocal calls
        calls += 1
        return {u.record_id: WriteResult(u.record_id, False, "LOCKED", "busy") for u in batch}

    results = BatchWriter(10, no_wait(), busy={"LOCKED"}).write(updates("a"), send)
    assert calls == 3
    assert (results["a"].ok, results["a"].code) == (False, "LOCKED")


def test_a_batch_whose_call_keeps_failing_is_reported_not_sent_and_the_next_is_tried() -> None:
    def send(batch: Sequence[RecordUpdate]) -> Mapping[str, WriteResult]:
        if batch[0].record_id == "a":
            raise RetryableError("503 from the CRM")
        return {u.record_id: WriteResult(u.record_id, True) for u in batch}

    results = BatchWriter(1, no_wait(), busy=()).write(updates("a", "b"), send)
    assert (results["a"].ok, results["a"].code) == (False, NOT_SENT)
    assert results["b"].ok
