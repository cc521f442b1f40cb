"""The sandbox's shared base: deterministic seeding, fault injection, call log, TLS server."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

from crm_sandbox.common import CallLog, Faults, LoggedCall, local_tls, serving
from crm_sandbox.seed import generate


def test_seed_is_deterministic_and_plausible() -> None:
    org = generate(seed=3, reps=12, deals=2000)
    assert org == generate(seed=3, reps=12, deals=2000)
    assert org != generate(seed=4, reps=12, deals=2000)
    stages = Counter(d.stage for d in org.deals)
    assert 0.35 < stages["won"] / 2000 < 0.55 and stages["lost"] > 0
    assert any(d.reversed_on for d in org.deals)
    for d in org.deals:
        if d.reversed_on:
            assert d.stage == "lost" and d.reversed_on > d.close_date
        if d.splits:
            assert sum(s.percent for s in d.splits) == 100
        assert d.amount == d.amount.quantize(Decimal("0.01"))
    managers = {r.manager_index for r in org.reps if r.manager_index is not None}
    assert managers and all(org.reps[m].manager_index is None for m in managers)


def test_rate_limit_window() -> None:
    faults = Faults(rate_limit=2, rate_window_s=10)
    assert faults.rate_limited(now=0.0)[:2] == (False, 1)
    assert faults.rate_limited(now=1.0)[:2] == (False, 0)
    limited, remaining, wait = faults.rate_limited(now=2.0)
    assert (limited, remaining, wait) == (True, 0, 8.0)
    assert not faults.rate_limited(now=10.5)[0]  # the first call left the window


def test_locked_records_fail_a_bounded_number_of_times() -> None:
    faults = Faults(locked_ids={"006A"}, lock_failures=2)
    assert [faults.lock_fails("006A") for _ in range(3)] == [True, True, False]
    assert not faults.lock_fails("006B")


def test_error_rate_is_seeded_and_settings_are_checked() -> None:
    a, b = Faults(error_rate=0.2, seed=1), Faults(error_rate=0.2, seed=1)
    draws = [a.should_fail() for _ in range(200)]
    assert draws == [b.should_fail() for _ in range(200)]
    assert 20 < sum(draws) < 60
    try:
        a.update({"eror_rate": 0.5})
    except ValueError as error:
        assert "eror_rate" in str(error)
    else:
        raise AssertionError("an unknown setting was accepted")


def test_call_log_counts_by_kind() -> None:
    log = CallLog()
    log.record(LoggedCall("GET", "/q", "query_page", 200, 2000))
    log.record(LoggedCall("PATCH", "/c", "composite_write", 200, 200))
    log.record(LoggedCall("GET", "/q", "query_page", 200, 5))
    assert log.counts() == {"composite_write": 1, "query_page": 2}
    assert log.total() == 3 and len(log.calls("query_page")) == 2
    assert json.loads(json.dumps(log.as_json()))["total"] == 3
    log.reset()
    assert log.total() == 0


def test_server_thread_serves_over_tls_with_the_local_ca(tmp_path: Path) -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    tls = local_tls(tmp_path / "ca.pem")
    with serving(app, ssl_context=tls.context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tls.ca_path))
        with urllib.request.urlopen(server.url, context=context, timeout=5) as reply:
            assert reply.read() == b"ok"


def test_the_seeded_team_looks_like_a_sales_team_as_of_any_day() -> None:
    from collections import defaultdict
    from datetime import date

    for today in (date(2026, 12, 6), date(2026, 3, 1), date(2027, 2, 1), date(2026, 1, 1)):
        org = generate(seed=7, reps=12, deals=400, today=today)
        for d in org.deals:
            assert max(d.created_at, d.modified_at).date() < today  # nothing from the future
            if d.stage in ("won", "lost"):
                assert d.close_date < today
            if d.reversed_on:
                assert d.reversed_on < today
        assert {d.stage for d in org.deals} >= {"prospecting", "negotiation"}  # pipeline
    org = generate(seed=7, reps=12, deals=400)  # the whole year
    quota: dict[int, Decimal] = defaultdict(Decimal)
    won: dict[int, Decimal] = defaultdict(Decimal)
    for q in org.quotas:
        quota[q.rep_index] += q.amount
    for d in org.deals:
        if d.stage == "won":
            won[d.owner_index] += d.amount
    attainment = sorted(won[rep] / quota[rep] for rep in quota)
    assert Decimal("0.3") < attainment[0] < Decimal("0.6")  # a struggler, not a zero
    assert Decimal("1.3") < attainment[-1] < Decimal("1.8")  # a star, not 700 %
    assert sum(1 for a in attainment if Decimal("0.6") <= a <= Decimal("1.2")) >= 5
    newcomer = org.reps[-1]
    ramp = {q.month.month: q.amount for q in org.quotas if q.rep_index == newcomer.index}
    # Quotas are 30,000-80,000 a month; the newcomer's first three are 25 %, 50 %, 75 % of one.
    assert ramp[1] <= 20_000 and ramp[2] <= 40_000 and ramp[3] <= 60_000
    assert ramp[4] >= 30_000
