"""Coaching plays judged on a rep's figures: each figure's scenario that holds a play and
one that does not, the share of the period gone by, and the task's words."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from connector.config import load_config
from connector.core.coaching import (
    Figure,
    Play,
    TrainingModule,
    calls,
    cleared_note,
    figures_of,
    module_body,
    play_body,
    play_subject,
    win_rate,
)
from connector.core.models import Deal, DealStatus, PeriodKind, Statement
from connector.errors import ConfigError

AS_OF = date(2026, 3, 20)  # 20 of March's 31 days gone by
WHEN = (AS_OF, PeriodKind.MONTH)
ZERO = Decimal(0)


def statement(rep_id: str = "ana", period: str = "2026-03", **figures: Any) -> Statement:
    base = Statement(
        rep_id=rep_id, plan_id="ae", period=period, quota=Decimal(10000), bookings=ZERO,
        attainment=None, commission=ZERO, spiffs=ZERO, bonuses=ZERO, clawbacks=ZERO,
        earnings=ZERO, draw=ZERO, draw_paid=ZERO, draw_recovered=ZERO, draw_balance=ZERO,
        draw_forgiven=ZERO, payout=ZERO, won_count=0, lost_count=0, win_rate=None,
        average_deal_size=None, open_pipeline=ZERO, lines=(),
    )  # fmt: skip
    return dataclasses.replace(base, **figures)


def deal(close: date, status: DealStatus, owner: str = "ana") -> Deal:
    return Deal(f"d-{close}-{status}", owner, Decimal(1000), close, status)


def play(**settings: Any) -> Play:
    return Play.model_validate({"play": "p", **settings})


def holds(p: Play, current: Statement, deals: list[Deal] = (), peers: list[Statement] = (),
          history: list[Statement] | None = None) -> bool:  # type: ignore[assignment]  # fmt: skip
    figures = figures_of("ana", [current], history or [current], deals, peers or [current], WHEN,
                         {p.days, 90})  # fmt: skip
    assert figures is not None
    return bool(calls([p], figures))


def test_pace_below_a_line_once_enough_of_the_period_has_gone_by() -> None:
    behind = statement(pace=Decimal("0.61"))
    assert holds(play(figure="pace", below="0.8", after="0.4"), behind)
    assert not holds(play(figure="pace", below="0.8", after="0.7"), behind)  # 20/31 < 0.7
    assert not holds(play(figure="pace", below="0.8"), statement(pace=Decimal("0.85")))
    assert not holds(play(figure="pace", below="0.8"), statement(pace=None))  # too early


def test_win_rate_over_a_rolling_window() -> None:
    deals = [
        deal(date(2026, 3, 1), DealStatus.WON),
        deal(date(2026, 2, 10), DealStatus.LOST),
        deal(date(2026, 1, 5), DealStatus.LOST),
        deal(date(2026, 1, 6), DealStatus.CANCELLED),  # won, then lost after all
        deal(date(2025, 11, 1), DealStatus.WON),  # outside 90 days
        deal(date(2026, 3, 25), DealStatus.WON),  # after the as-of day
        deal(date(2026, 3, 2), DealStatus.OPEN),
    ]
    assert win_rate(deals, AS_OF, 90) == Decimal("0.2500")
    assert win_rate(deals, AS_OF, 40) == Decimal("0.5000")
    assert win_rate(deals, AS_OF, 30) == Decimal("1.0000")
    assert holds(play(figure="win_rate", below="0.3", days=90), statement(), deals)
    assert not holds(play(figure="win_rate", below="0.3", days=30), statement(), deals)
    assert not holds(play(figure="win_rate", below="0.3"), statement(), [])  # nothing closed


def test_pipeline_coverage_under_three_times_the_quota_left() -> None:
    thin = statement(pipeline_coverage=Decimal("1.5"))
    assert holds(play(figure="pipeline_coverage", below="3"), thin)
    assert not holds(play(figure="pipeline_coverage", below="3"), statement(pipeline_coverage=None))


def test_sales_cycle_against_the_plan_members_median() -> None:
    slow = statement(sales_cycle_days=Decimal("64.0"))
    peers = [slow, statement("bo", sales_cycle_days=Decimal("30.0")),
             statement("cy", sales_cycle_days=Decimal("25.0"))]  # fmt: skip
    assert holds(play(figure="cycle_vs_team", above="2"), slow, peers=peers)  # 64 / 30
    fast = statement(sales_cycle_days=Decimal("40.0"))
    assert not holds(play(figure="cycle_vs_team", above="2"), fast, peers=[fast, *peers[1:]])


def test_no_won_deal_in_thirty_days() -> None:
    quiet = [deal(date(2026, 2, 1), DealStatus.WON), deal(date(2026, 3, 10), DealStatus.LOST)]
    assert holds(play(figure="days_since_win", above="30"), statement(), quiet)  # 47 days
    recent = [deal(date(2026, 3, 1), DealStatus.WON)]
    assert not holds(play(figure="days_since_win", above="30"), statement(), recent)
    # Never won: counted from the start of the rep's first period.
    history = [statement(period="2026-01"), statement()]
    assert holds(play(figure="days_since_win", above="30"), statement(), [], history=history)
    assert not holds(play(figure="days_since_win", above="30"), statement(), [])  # 19 days in


def test_a_play_names_one_bound_and_its_task_says_why() -> None:
    with pytest.raises(ValidationError, match="exactly one of below: or above:"):
        play(figure="pace", below="0.8", above="1.2")
    with pytest.raises(ValidationError, match="share of the period"):
        play(figure="pace", below="0.8", after="1.5")
    p = play(title="Behind pace", figure="pace", below="0.8",
             talking_points=["What is stuck in negotiation?"])  # fmt: skip
    current = statement(pace=Decimal("0.6129"), attainment=Decimal("0.3950"))
    figures = figures_of("ana", [current], [current], [], [current], WHEN)
    assert figures is not None
    (call,) = calls([p], figures)
    module = TrainingModule(id="m", title="Pipeline", link="https://learn.example.com/p",
                            addresses=Figure.PACE)  # fmt: skip
    assert play_subject(p, "Ana Diaz", "2026-03") == "Coaching: Behind pace - Ana Diaz (2026-03)"
    body = play_body(call, "Ana Diaz", module)
    assert body.startswith("Ana Diaz's pace is 61.29%, below 80.00% (64.52% of 2026-03 gone by).")
    assert "- attainment: 39.50%" in body and "- What is stuck in negotiation?" in body
    assert "Training assigned to Ana Diaz: Pipeline (https://learn.example.com/p)" in body
    assert "Due 2026-04-03." in module_body(module, call, date(2026, 4, 3))
    assert cleared_note(p, Decimal("0.85"), AS_OF) == (
        "2026-03-20: cleared - pace is now 85.00%, no longer below 80.00%."
    )


def parse_config(data: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "spm.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_the_config_names_known_modules_once(tmp_path: Path) -> None:
    base = {
        "currency": "USD", "period": "month",
        "plans": [{"id": "ae", "name": "AE", "start": "2026-01-01", "members": ["a"],
                   "quota": "1000", "commission": {"tiers": [{"rate": "0.1"}]}}],
        "training": [{"id": "pipeline", "title": "Pipeline", "link": "https://x.example/p",
                      "addresses": "pipeline_coverage"}],
    }  # fmt: skip
    good = {**base, "coaching": [{"play": "thin", "figure": "pipeline_coverage", "below": "3",
                                  "assign": "pipeline"}]}  # fmt: skip
    assert parse_config(good, tmp_path).coaching[0].assign == "pipeline"
    unknown = {**base, "coaching": [{"play": "thin", "figure": "pipeline_coverage",
                                     "below": "3", "assign": "closing"}]}  # fmt: skip
    with pytest.raises(ConfigError, match="'closing' is not a training module's id"):
        parse_config(unknown, tmp_path)
    twice = {**base, "coaching": [{"play": "thin", "figure": "pace", "below": "1"}] * 2}
    with pytest.raises(ConfigError, match="'thin' is already a play's id"):
        parse_config(twice, tmp_path)


def test_hubspot_task_notes_go_in_as_html_and_come_back_as_text() -> None:
    from connector.adapters.hubspot.tasks import as_html, as_text

    text = "Ana's pace is 61.29%, below 80.00% <b> & more\n\nTalking points:\n- Why?"
    assert as_html(text) == (
        "Ana's pace is 61.29%, below 80.00% &lt;b&gt; &amp; more<br><br>Talking points:<br>- Why?"
    )
    assert as_text(as_html(text)) == text
    # What an edit in HubSpot leaves: paragraphs and entities.
    edited = as_html(text) + "<p>Let&#39;s <strong>talk</strong> Monday</p>"
    assert as_text(edited) == text + "\nLet's talk Monday"
