"""Recognition: the award rules of docs/coaching.md, each a test; awards given once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connector.core.models import Statement
from connector.core.periods import PeriodKind
from connector.core.recognition import Award, Recognition, recognize
from connector.store.state import Store

MONTH = PeriodKind.MONTH
D = Decimal


def month(rep: str, period: str, bookings: str, won: int = 1, quota: str | None = "10000") -> Any:
    attainment = None if quota is None else D(bookings) / D(quota)
    zero = D(0)
    return Statement(
        rep_id=rep, plan_id="ae", period=period, quota=None if quota is None else D(quota),
        bookings=D(bookings), attainment=attainment, commission=zero, spiffs=zero,
        bonuses=zero, clawbacks=zero, earnings=zero, draw=zero, draw_paid=zero,
        draw_recovered=zero, draw_balance=zero, draw_forgiven=zero, payout=zero,
        won_count=won, lost_count=0, win_rate=None, average_deal_size=None,
        open_pipeline=zero, lines=(),
    )  # fmt: skip


def rules(*specs: dict[str, Any]) -> list[Recognition]:
    return [Recognition.model_validate(spec) for spec in specs]


def given(awards: list[Award]) -> list[tuple[str, str, str]]:
    return [(a.rep_id, a.award, a.key) for a in awards]


HISTORY = [
    month("ana", "2026-01", "0", won=0),
    month("ana", "2026-02", "8000"),
    month("ana", "2026-03", "12000"),
    month("ana", "2026-04", "11000"),
    month("ana", "2026-05", "15000"),
    month("bo", "2026-03", "12000"),
    month("bo", "2026-04", "4000"),
]


def test_first_win_and_personal_bests() -> None:
    found = recognize(HISTORY, rules({"award": "first_win"}, {"award": "personal_best"}),
                      date(2026, 5, 20), MONTH)  # fmt: skip
    assert given(found) == [
        ("ana", "first_win", ""),
        ("ana", "personal_best", "2026-03"),  # 12,000 beats February's 8,000
        ("ana", "personal_best", "2026-05"),  # 15,000 beats March's 12,000; April did not
        ("bo", "first_win", ""),
    ]
    assert found[0].said == "first won deal, in 2026-02"
    assert found[2].said == "bookings 15000.00, above 12000.00 in 2026-03"


def test_a_streak_is_given_when_it_reaches_its_length() -> None:
    found = recognize(HISTORY, rules({"award": "streak", "periods": 3}), date(2026, 5, 31), MONTH)
    # March, April and May at or above 10,000: once, in May.
    assert given(found) == [("ana", "streak", "2026-05")]


def test_the_top_of_a_period_that_is_over_ties_share_it() -> None:
    top = rules({"award": "top_of_period"})
    # On 10 April, March is the latest period over: Ana and Bo both at 120 %.
    assert given(recognize(HISTORY, top, date(2026, 4, 10), MONTH)) == [
        ("ana", "top_of_period", "2026-03"), ("bo", "top_of_period", "2026-03")]  # fmt: skip
    assert recognize(HISTORY, top, date(2026, 4, 10), MONTH, leaderboard=False) == []


def test_on_pace_for_club_with_months_left() -> None:
    club = rules({"award": "club_pace", "at": "1.1", "months_left": 8})
    # On 20 May (8 months left after May): 46,000 booked against 40,000 for January to
    # April and 20/31 of May's 10,000: pace 46,000 / 46,451.61 = 99.03 %: not yet.
    assert recognize(HISTORY, club, date(2026, 5, 20), MONTH) == []
    easier = rules({"award": "club_pace", "at": "0.95", "months_left": 8})
    (award,) = recognize(HISTORY, easier, date(2026, 5, 20), MONTH)
    assert (award.rep_id, award.key, award.period) == ("ana", "2026", "2026-05")
    # Too early in the year: more months left than the rule allows.
    assert recognize(HISTORY, rules({"award": "club_pace", "at": "0.5", "months_left": 3}),
                     date(2026, 5, 20), MONTH) == []  # fmt: skip


def test_rules_are_checked() -> None:
    for spec, said in (
        ({"award": "fastest"}, "award"),
        ({"award": "streak", "periods": 1}, "periods"),
        ({"award": "club_pace", "months_left": 12}, "months_left"),
        ({"award": "first_win", "colour": "gold"}, "colour"),
    ):
        with pytest.raises(ValidationError, match=said):
            Recognition.model_validate(spec)


def test_the_store_gives_each_award_once_and_keeps_its_first_day(tmp_path: Path) -> None:
    found = recognize(HISTORY, rules({"award": "first_win"}, {"award": "personal_best"}),
                      date(2026, 5, 20), MONTH)  # fmt: skip
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        assert store.awards.give(found, date(2026, 5, 20)) == 4
        assert store.awards.give(found, date(2026, 5, 21)) == 0  # a replay: nothing new
        count, latest = store.awards.summary(["ana"])["ana"]
        assert count == 3 and latest.key == "2026-05"
        assert {g.given_at for g in store.awards.of()} == {"2026-05-20"}
        assert (
            latest.text() == "Personal best (2026-05): bookings 15000.00, above 12000.00 in 2026-03"
        )
