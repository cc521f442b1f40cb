"""The calc CSV loader: the happy path, then one test per kind of bad input, messages exact."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connector.core.models import DealStatus, Split
from connector.errors import InputError
from connector.inputs import load_inputs, read_deals, read_reps, read_splits

DEALS = """\
id,owner_id,amount,close_date,status,currency,cancel_date,type,source
D1,r1,1234.50,2026-01-15,won,USD,,New Business,Partner
D2,r1,-200,2026-02-01,won,,,Renewal,
D3,r2,5000,2026-02-03,cancelled,USD,2026-03-01,New Business,Inbound
D4,r2,700.25,2026-03-09,open,USD,,,
"""
REPS = """\
id,name,email,active,start_date,end_date,manager_id
r1,Avery Chen,avery@acme.example,true,2026-02-01,,m1
r2,Blake Osei,,no,,2026-08-31,
"""
SPLITS = """\
deal_id,rep_id,percent
D1,r1,60
D1,r2,40
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # messages name the files as given: "deals.csv:3: …"
    return tmp_path


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def deals_error(text: str) -> str:
    with pytest.raises(InputError) as caught:
        read_deals(write("deals.csv", text), currency="USD")
    return str(caught.value)


def splits_error(splits: str, deals: str = DEALS) -> str:
    with pytest.raises(InputError) as caught:
        load_inputs(write("deals.csv", deals), None, write("splits.csv", splits), currency="USD")
    return str(caught.value)


def test_the_three_files_become_records() -> None:
    inputs = load_inputs(
        write("deals.csv", DEALS),
        write("reps.csv", REPS),
        write("splits.csv", SPLITS),
        currency="USD",
    )
    r1, r2 = inputs.reps
    assert (r1.id, r1.name, r1.email, r1.active) == ("r1", "Avery Chen", "avery@acme.example", True)
    assert (r1.start_date, r1.end_date, r1.manager_id) == (date(2026, 2, 1), None, "m1")
    assert (r2.active, r2.end_date, r2.manager_id) == (False, date(2026, 8, 31), None)

    d1, d2, d3, d4 = inputs.deals
    assert d1.amount == Decimal("1234.50")
    assert d1.close_date == date(2026, 1, 15)
    assert d1.status is DealStatus.WON
    assert d1.type == "New Business"
    assert d1.currency == "USD"
    assert dict(d1.properties) == {"source": "Partner"}
    assert d1.splits == (Split("r1", Decimal("60")), Split("r2", Decimal("40")))
    assert d2.amount == Decimal("-200")  # a credit note
    assert d2.currency == "USD"  # an empty currency cell means the plans' currency
    assert d3.cancel_date == date(2026, 3, 1)
    assert d4.type is None
    assert d4.splits == ()


def test_column_order_is_free_and_optional_columns_optional() -> None:
    text = "status,close_date,amount,owner_id,id\nwon,2026-01-02,10,r1,D1\n"
    (deal,) = read_deals(write("deals.csv", text), currency="USD")
    assert (deal.id, deal.owner_id, deal.amount, deal.cancel_date) == (
        "D1",
        "r1",
        Decimal(10),
        None,
    )


def test_missing_column() -> None:
    text = "id,owner_id,close_date,status\nD1,r1,2026-01-02,won\n"
    assert deals_error(text) == "deals.csv: missing column 'amount'"


def test_not_a_number_names_file_line_and_column() -> None:
    text = DEALS.replace("D4,r2,700.25", "D4,r2,abc")
    assert deals_error(text) == "deals.csv:5: amount: 'abc' is not a number"


@pytest.mark.parametrize("amount", ["1e5", "1_000", " 12", "NaN", "Infinity", "1,000"])
def test_money_is_a_plain_decimal(amount: str) -> None:
    text = DEALS.replace("D4,r2,700.25", f'D4,r2,"{amount}"')
    message = deals_error(text)
    assert message in (
        f"deals.csv:5: amount: {amount!r} is not a plain decimal number (like 1234.50)",
        f"deals.csv:5: amount: {amount!r} is not a number",
    )


@pytest.mark.parametrize("day", ["2026-02-30", "20260301", "2026-3-01", ""])
def test_dates_are_iso(day: str) -> None:
    text = DEALS.replace("D2,r1,-200,2026-02-01", f"D2,r1,-200,{day}")
    assert deals_error(text) == f"deals.csv:3: close_date: {day!r} is not a date (YYYY-MM-DD)"


def test_unknown_status() -> None:
    text = DEALS.replace("D4,r2,700.25,2026-03-09,open", "D4,r2,700.25,2026-03-09,pending")
    assert deals_error(text) == (
        "deals.csv:5: status: 'pending' is not one of open, won, lost, cancelled"
    )


def test_status_is_read_whatever_its_case() -> None:
    text = DEALS.replace(",open,", ",Open,")
    assert read_deals(write("deals.csv", text), currency="USD")[3].status is DealStatus.OPEN


def test_cancelled_needs_a_cancel_date() -> None:
    text = DEALS.replace("cancelled,USD,2026-03-01", "cancelled,USD,")
    assert deals_error(text) == "deals.csv:4: cancel_date: a cancelled deal needs a cancel_date"


def test_cancel_date_before_close_date() -> None:
    text = DEALS.replace("cancelled,USD,2026-03-01", "cancelled,USD,2026-01-31")
    assert deals_error(text) == (
        "deals.csv:4: cancel_date: 2026-01-31 is before close_date 2026-02-03"
    )


def test_duplicate_deal_ids_name_both_lines() -> None:
    text = DEALS.replace("D4,", "D2,")
    assert deals_error(text) == "deals.csv:5: id: deal D2 is also on line 3"


def test_a_deal_in_another_currency() -> None:
    text = DEALS.replace(
        "D3,r2,5000,2026-02-03,cancelled,USD", "D3,r2,5000,2026-02-03,cancelled,EUR"
    )
    assert deals_error(text) == (
        "deals.csv:4: currency: 'EUR', but the plans are in USD; "
        "give exchange rates (calc --rates FILE) to convert it"
    )


def test_a_row_of_the_wrong_width() -> None:
    text = DEALS.replace("D4,r2,700.25,2026-03-09,open,USD,,,", "D4,r2,700.25,2026-03-09,open")
    assert deals_error(text) == "deals.csv:5: expected 9 fields, found 5"


def test_empty_required_value() -> None:
    assert deals_error(DEALS.replace("D2,r1,", "D2,,")) == "deals.csv:3: owner_id: is empty"


def test_line_numbers_are_physical_lines() -> None:
    # A quoted value spanning two lines, and blank lines, still count as lines.
    text = DEALS.replace(",Renewal,", ',"Renewal\nmulti-year",').replace("D3,", "\nD3,")
    text = text.replace("D4,r2,700.25", "D4,r2,x")
    assert deals_error(text) == "deals.csv:7: amount: 'x' is not a number"


def test_several_bad_rows_give_several_lines() -> None:
    text = DEALS.replace("D2,r1,-200", "D2,r1,ten").replace("D4,r2,700.25", "D4,r2,abc")
    assert deals_error(text).splitlines() == [
        "deals.csv:3: amount: 'ten' is not a number",
        "deals.csv:5: amount: 'abc' is not a number",
    ]


def test_missing_and_empty_files() -> None:
    with pytest.raises(InputError) as caught:
        read_deals("nope.csv", currency="USD")
    assert str(caught.value) == "nope.csv: no such file"
    assert deals_error("") == "deals.csv: the file is empty; expected a header row"


# --- splits ------------------------------------------------------------------


def test_split_of_an_unknown_deal() -> None:
    assert splits_error(SPLITS + "D9,r1,100\n") == (
        "splits.csv:4: deal_id: no deal D9 in deals.csv"
    )


def test_rep_listed_twice_in_a_deals_splits() -> None:
    text = "deal_id,rep_id,percent\nD1,r1,50\nD1,r1,50\n"
    assert splits_error(text) == (
        "splits.csv:3: rep_id: r1 is already in the splits of deal D1 (line 2)"
    )


def test_split_percents_must_sum_to_100() -> None:
    text = "deal_id,rep_id,percent\nD1,r1,60\nD1,r2,30\n"
    assert splits_error(text) == "splits.csv: deal D1: percents sum to 90, not 100 (lines 2, 3)"


def test_split_percent_between_0_and_100() -> None:
    text = "deal_id,rep_id,percent\nD1,r1,120\nD1,r2,-20\n"
    with pytest.raises(InputError) as caught:
        read_splits(write("splits.csv", text))
    assert str(caught.value).splitlines() == [
        "splits.csv:2: percent: 120 is not between 0 and 100",
        "splits.csv:3: percent: -20 is not between 0 and 100",
    ]


def test_split_percent_must_be_a_number() -> None:
    text = "deal_id,rep_id,percent\nD1,r1,sixty\n"
    assert splits_error(text) == "splits.csv:2: percent: 'sixty' is not a number"


# --- reps --------------------------------------------------------------------


def reps_error(text: str) -> str:
    with pytest.raises(InputError) as caught:
        read_reps(write("reps.csv", text))
    return str(caught.value)


def test_reps_need_an_id_column() -> None:
    assert reps_error("name,email\nA,a@x\n") == "reps.csv: missing column 'id'"


def test_only_id_is_required() -> None:
    (rep,) = read_reps(write("reps.csv", "id\nr1\n"))
    assert (rep.id, rep.active, rep.start_date) == ("r1", True, None)


def test_duplicate_rep_ids_name_both_lines() -> None:
    assert reps_error(REPS + "r1,Again,,,,,\n") == "reps.csv:4: id: rep r1 is also on line 2"


def test_rep_active_flag_and_dates() -> None:
    assert reps_error(REPS.replace(",no,", ",maybe,")) == (
        "reps.csv:3: active: 'maybe' is not true or false"
    )
    assert reps_error(REPS.replace("2026-02-01,,m1", "2026-02-01,2026-01-01,m1")) == (
        "reps.csv:2: end_date: 2026-01-01 is before start_date 2026-02-01"
    )
    assert reps_error(REPS.replace("2026-08-31", "31/08/2026")) == (
        "reps.csv:3: end_date: '31/08/2026' is not a date (YYYY-MM-DD)"
    )
