"""The CSV files of ``calc`` (reps.csv, deals.csv, splits.csv) → Rep and Deal records.

A header row names the columns, in any order. Every problem is reported as
``deals.csv:17: amount: 'abc' is not a number`` (the physical line, the header
being line 1) and raises :class:`~connector.errors.InputError`; nothing is
computed from a file with a bad row.

Speed matters here: a large org's export has millions of deals, and loading
must cost a small multiple of what the ``csv`` module alone takes to read the
file. So the hot loop indexes columns by position, parses dates through a
cache (a year has 365 of them), builds Decimals straight from the text with a
cheap plainness check, and formats messages only when something is wrong.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from connector.core.currency import RateBasis, Rates, convert
from connector.core.models import CrmQuota, Deal, DealStatus, Lead, Rep, Split
from connector.core.money import HUNDRED, ZERO
from connector.errors import InputError

if TYPE_CHECKING:
    from _csv import Reader  # csv.reader's type, which has no public name before 3.12

DEAL_COLUMNS = ("id", "owner_id", "amount", "close_date", "status")
REP_COLUMNS = ("id",)
SPLIT_COLUMNS = ("deal_id", "rep_id", "percent")
QUOTA_COLUMNS = ("rep_id", "start_date")
LEAD_COLUMNS = ("id", "owner_id", "created_date", "converted")
# Columns the Deal record holds itself; every other column becomes a property
# (the engine's SPIFF filters read these through the Deal's own fields).
_DEAL_FIELDS = frozenset({*DEAL_COLUMNS, "currency", "cancel_date", "type", "created_date"})
MAX_ERRORS = 20  # enough to fix a batch of mistakes at once, short enough to read

_STATUSES = {status.value: status for status in DealStatus}
_TRUE = frozenset({"", "true", "yes", "y", "1", "t"})  # empty: active by default
_FALSE = frozenset({"false", "no", "n", "0", "f"})


@dataclass(frozen=True, slots=True)
class Inputs:
    reps: tuple[Rep, ...]
    deals: tuple[Deal, ...]
    deal_columns: frozenset[str] = frozenset()  # deals.csv's header, for filter checks


class _BadValue(Exception):
    """A cell that cannot be read; the row loop adds the file and line."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column}: {problem}" if column else problem)


def load_inputs(
    deals: str | Path,
    reps: str | Path | None = None,
    splits: str | Path | None = None,
    *,
    currency: str,
    rates: Rates | None = None,
) -> Inputs:
    """Read the calc input files; ``reps``/``splits`` are optional.

    Without reps.csv the engine takes the plan members with default dates. With
    ``rates``, deals in other currencies are converted (core/currency.py).
    """
    rep_records = read_reps(reps) if reps is not None else []
    deal_records = read_deals(deals, currency=currency, foreign=rates is not None)
    if splits is not None:
        deal_records = attach_splits(deal_records, read_splits(splits), str(splits), str(deals))
    if rates is not None:
        deal_records = convert(deal_records, rates, currency)
    with _reader(deals) as (_, header):
        columns = frozenset(header)
    return Inputs(tuple(rep_records), tuple(deal_records), columns)


# --- reps --------------------------------------------------------------------


def read_reps(path: str | Path) -> list[Rep]:
    name = str(path)
    reps: list[Rep] = []
    first_line: dict[str, int] = {}
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, REP_COLUMNS)
        optional = [column.get(key) for key in _REP_OPTIONAL]
        dates: dict[str, date] = {}
        for row in _rows(reader, name, len(header), errors):
            try:
                rep_id = _required(row[column["id"]], "id")
                rep_name, email, active, start, end, manager, team = (
                    row[index] if index is not None else "" for index in optional
                )
                start_date = (
                    (dates.get(start) or _date(start, "start_date", dates)) if start else None
                )
                end_date = (dates.get(end) or _date(end, "end_date", dates)) if end else None
                if start_date and end_date and end_date < start_date:
                    raise _BadValue("end_date", f"{end_date} is before start_date {start_date}")
                if rep_id in first_line:
                    raise _BadValue("id", f"rep {rep_id} is also on line {first_line[rep_id]}")
                is_active = _active(active)
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            first_line[rep_id] = reader.line_num
            reps.append(
                Rep(
                    id=rep_id,
                    name=rep_name,
                    email=email.strip(),
                    active=is_active,
                    start_date=start_date,
                    end_date=end_date,
                    manager_id=manager or None,
                    team_id=team or None,
                )
            )
    _raise_if(errors)
    return reps


_REP_OPTIONAL = ("name", "email", "active", "start_date", "end_date", "manager_id", "team_id")


def _active(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _BadValue("active", f"{text!r} is not true or false")


# --- deals -------------------------------------------------------------------


def read_deals(path: str | Path, *, currency: str, foreign: bool = False) -> list[Deal]:
    """Deals without their splits (see :func:`attach_splits`); with ``foreign``, deals in
    other currencies too, as they are (core/currency.py converts them)."""
    name = str(path)
    deals: list[Deal] = []
    seen: set[str] = set()  # a set, not id → line: a million line-number ints cost time
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, DEAL_COLUMNS)
        i_id, i_owner, i_amount, i_close, i_status = (column[key] for key in DEAL_COLUMNS)
        i_currency = column.get("currency")
        i_cancel = column.get("cancel_date")
        i_type = column.get("type")
        i_created = column.get("created_date")
        extra = [(key, index) for key, index in column.items() if key not in _DEAL_FIELDS]
        width = len(header)
        dates: dict[str, date] = {}
        statuses = _STATUSES
        no_properties = Deal._field_defaults["properties"]
        append = deals.append
        for row in reader:
            # The hot loop: each step is a dict lookup or one C call when the row is
            # good; the helpers that build messages run only for bad rows.
            try:
                if len(row) != width:
                    if row:
                        raise _BadValue("", f"expected {width} fields, found {len(row)}")
                    continue  # a blank line
                deal_id = row[i_id] or _required("", "id")
                if deal_id in seen:
                    first = _first_line(path, i_id, deal_id)
                    raise _BadValue("id", f"deal {deal_id} is also on line {first}")
                owner = row[i_owner] or _required("", "owner_id")
                text = row[i_amount]
                try:
                    amount = Decimal(text)
                except InvalidOperation:
                    amount = _decimal(text, "amount")  # raises with the message
                if text.strip(_PLAIN_CHARS) or abs(amount) >= MAX_AMOUNT:
                    amount = _decimal(text, "amount")  # raises with the message
                text = row[i_close]
                close_date = dates.get(text) or _date(text, "close_date", dates)
                status = statuses.get(row[i_status]) or _status(row[i_status])
                cancel_date = None
                if i_cancel is not None and row[i_cancel]:
                    text = row[i_cancel]
                    cancel_date = dates.get(text) or _date(text, "cancel_date", dates)
                    if cancel_date < close_date:
                        raise _BadValue(
                            "cancel_date", f"{cancel_date} is before close_date {close_date}"
                        )
                created = None
                if i_created is not None and row[i_created]:
                    text = row[i_created]
                    created = dates.get(text) or _date(text, "created_date", dates)
                    if created > close_date:
                        raise _BadValue(
                            "created_date", f"{created} is after close_date {close_date}"
                        )
                if status is DealStatus.CANCELLED and cancel_date is None:
                    raise _BadValue("cancel_date", "a cancelled deal needs a cancel_date")
                deal_currency = currency
                if i_currency is not None and row[i_currency] != currency and row[i_currency]:
                    if not foreign:
                        raise _BadValue(
                            "currency",
                            f"{row[i_currency]!r}, but the plans are in {currency}; give "
                            "exchange rates (calc --rates FILE) to convert it",
                        )
                    deal_currency = _currency(row[i_currency])
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            seen.add(deal_id)
            append(
                Deal(
                    deal_id,
                    owner,
                    amount,
                    close_date,
                    status,
                    deal_currency,
                    cancel_date,
                    (row[i_type] or None) if i_type is not None else None,
                    {key: row[index] for key, index in extra} if extra else no_properties,
                    (),
                    created,
                )
            )
    _raise_if(errors)
    return deals


def _currency(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise _BadValue("currency", f"{text!r} is not a three-letter currency code")
    return code


def read_rates(path: str | Path, basis: RateBasis = RateBasis.CLOSE_DATE) -> Rates:
    """rates.csv: ``currency, from, rate`` (plan currency per unit, from that day on)."""
    name = str(path)
    rows: dict[str, list[tuple[date, Decimal]]] = {}
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, ("currency", "from", "rate"))
        dates: dict[str, date] = {}
        for row in _rows(reader, name, len(header), errors):
            try:
                code = _currency(row[column["currency"]])
                start = _date(row[column["from"]], "from", dates)
                rate = _decimal(row[column["rate"]], "rate")
                if rate <= 0:
                    raise _BadValue("rate", f"{rate} must be greater than 0")
                if any(day == start for day, _ in rows.get(code, ())):
                    raise _BadValue("from", f"{code} already has a rate from {start}")
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            rows.setdefault(code, []).append((start, rate))
    _raise_if(errors)
    return Rates({c: tuple(sorted(found)) for c, found in rows.items()}, name, basis)


def _status(text: str) -> DealStatus:
    status = _STATUSES.get(text.strip().lower())  # "Won" from a spreadsheet is still won
    if status is None:
        raise _BadValue("status", f"{text!r} is not one of open, won, lost, cancelled")
    return status


# --- splits ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SplitRow:
    line: int
    deal_id: str
    split: Split


def read_splits(path: str | Path) -> list[SplitRow]:
    name = str(path)
    rows: list[SplitRow] = []
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, SPLIT_COLUMNS)
        i_deal, i_rep, i_percent = (column[key] for key in SPLIT_COLUMNS)
        for row in _rows(reader, name, len(header), errors):
            try:
                deal_id = _required(row[i_deal], "deal_id")
                rep_id = _required(row[i_rep], "rep_id")
                percent = _decimal(row[i_percent], "percent")
                if not ZERO <= percent <= HUNDRED:
                    raise _BadValue("percent", f"{percent} is not between 0 and 100")
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            rows.append(SplitRow(reader.line_num, deal_id, Split(rep_id, percent)))
    _raise_if(errors)
    return rows


def attach_splits(
    deals: Sequence[Deal], splits: Sequence[SplitRow], splits_name: str, deals_name: str
) -> list[Deal]:
    """Each deal with its splits; the splits of one deal must name each rep once and sum to 100."""
    by_deal: dict[str, list[SplitRow]] = {}
    for row in splits:
        by_deal.setdefault(row.deal_id, []).append(row)
    position = {deal.id: index for index, deal in enumerate(deals)} if by_deal else {}
    errors: list[str] = []
    result = list(deals)
    for deal_id, rows in by_deal.items():
        index = position.get(deal_id)
        if index is None:
            errors.append(
                f"{splits_name}:{rows[0].line}: deal_id: no deal {deal_id} in {deals_name}"
            )
            continue
        lines: dict[str, int] = {}
        for row in rows:
            rep_id = row.split.rep_id
            if rep_id in lines:
                errors.append(
                    f"{splits_name}:{row.line}: rep_id: {rep_id} is already in the splits "
                    f"of deal {deal_id} (line {lines[rep_id]})"
                )
            lines.setdefault(rep_id, row.line)
        total = sum((row.split.percent for row in rows), ZERO)
        if total != HUNDRED:
            where = ", ".join(str(row.line) for row in rows)
            errors.append(
                f"{splits_name}: deal {deal_id}: percents sum to {total}, not 100 "
                f"(line{'s' if len(rows) > 1 else ''} {where})"
            )
        result[index] = result[index]._replace(splits=tuple(row.split for row in rows))
    _raise_if(errors)
    return result


# --- quotas and leads ------------------------------------------------------------


def read_quotas(path: str | Path) -> list[CrmQuota]:
    """quotas.csv: the CRM's quotas as an export has them (rep_id, start_date, amount, quantity).

    A quota counts in the period containing its start date; a row gives an
    ``amount`` (revenue), a ``quantity`` (a count goal's target) or both.
    """
    name = str(path)
    quotas: list[CrmQuota] = []
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, QUOTA_COLUMNS)
        i_amount, i_quantity = column.get("amount"), column.get("quantity")
        if i_amount is None and i_quantity is None:
            raise InputError(f"{name}:1: needs an amount or a quantity column")
        dates: dict[str, date] = {}
        for row in _rows(reader, name, len(header), errors):
            try:
                rep_id = _required(row[column["rep_id"]], "rep_id")
                start = _date(
                    _required(row[column["start_date"]], "start_date"), "start_date", dates
                )
                amount = _optional_number(row, i_amount, "amount")
                quantity = _optional_number(row, i_quantity, "quantity")
                if amount is None and quantity is None:
                    raise _BadValue("amount", "give an amount or a quantity")
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            quotas.append(CrmQuota(rep_id, start, amount, quantity))
    _raise_if(errors)
    return quotas


def _optional_number(row: Sequence[str], index: int | None, column: str) -> Decimal | None:
    if index is None or not row[index].strip():
        return None
    number = _decimal(row[index], column)
    if number < 0:
        raise _BadValue(column, f"{number} is negative")
    return number


def read_leads(path: str | Path) -> list[Lead]:
    """leads.csv: id, owner_id, created_date, converted (true/false)."""
    name = str(path)
    leads: list[Lead] = []
    errors: list[str] = []
    with _reader(path) as (reader, header):
        column = _columns(name, header, LEAD_COLUMNS)
        dates: dict[str, date] = {}
        for row in _rows(reader, name, len(header), errors):
            try:
                lead_id = _required(row[column["id"]], "id")
                owner = _required(row[column["owner_id"]], "owner_id")
                created = _date(
                    _required(row[column["created_date"]], "created_date"), "created_date", dates
                )
                converted = _flag(row[column["converted"]], "converted")
            except _BadValue as problem:
                _note(errors, name, reader.line_num, problem)
                continue
            leads.append(Lead(lead_id, owner, created, converted))
    _raise_if(errors)
    return leads


def _flag(text: str, column: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE and lowered:
        return True
    if lowered in _FALSE or not lowered:
        return False
    raise _BadValue(column, f"{text!r} is not true or false")


# --- shared ------------------------------------------------------------------


@contextmanager
def _reader(path: str | Path) -> Iterator[tuple[Reader, list[str]]]:
    """A csv reader positioned after the header, with the cyclic GC paused.

    Millions of freshly built tuples would otherwise trigger collection after
    collection, each walking everything built so far; none of them can form
    a cycle, so pausing is safe and roughly halves the load time.
    """
    name = str(path)
    was_enabled = gc.isenabled()
    try:
        handle: TextIO = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as error:
        raise InputError(f"{name}: cannot be read ({error.strerror})") from None
    gc.disable()
    try:
        with handle:
            reader = csv.reader(handle, strict=True)
            try:
                header = [column.strip() for column in next(reader)]
            except StopIteration:
                raise InputError(f"{name}: the file is empty; expected a header row") from None
            except UnicodeDecodeError:
                raise InputError(f"{name}:{_bad_byte_line(path)}: not UTF-8 text") from None
            except csv.Error as error:
                raise InputError(f"{name}:1: {_csv_problem(error)}") from None
            try:
                yield reader, header
            except UnicodeDecodeError:
                # Text is decoded ahead of the csv reader, a block at a time: find the
                # line of the bad byte itself.
                raise InputError(f"{name}:{_bad_byte_line(path)}: not UTF-8 text") from None
            except csv.Error as error:
                raise InputError(f"{name}:{reader.line_num}: {_csv_problem(error)}") from None
    finally:
        if was_enabled:
            gc.enable()


def _rows(reader: Reader, name: str, width: int, errors: list[str]) -> Iterator[list[str]]:
    """The data rows, skipping blank lines; a row of the wrong width is an error."""
    for row in reader:
        if len(row) == width:
            yield row
        elif row:
            _note(
                errors,
                name,
                reader.line_num,
                f"expected {width} fields, found {len(row)}",
            )


def _first_line(path: str | Path, column: int, value: str) -> int:
    """The line where ``value`` first appears in ``column`` (read again: errors are rare)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if len(row) > column and row[column] == value:
                return reader.line_num
    return 0


def _bad_byte_line(path: str | Path) -> int:
    """The line holding the first byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return data.count(b"\n", 0, error.start) + 1
    return 1


def _csv_problem(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"not valid CSV ({error})"


def _columns(name: str, header: list[str], required: Sequence[str]) -> dict[str, int]:
    column: dict[str, int] = {}
    for index, key in enumerate(header):
        if key in column:
            raise InputError(f"{name}: column {key!r} appears twice in the header")
        column[key] = index
    missing = [key for key in required if key not in column]
    if len(missing) == 1:
        raise InputError(f"{name}: missing column {missing[0]!r}")
    if missing:
        raise InputError(f"{name}: missing columns {', '.join(map(repr, missing))}")
    return column


def _note(errors: list[str], name: str, line: int, problem: object) -> None:
    errors.append(f"{name}:{line}: {problem}")
    if len(errors) >= MAX_ERRORS:
        _raise_if(errors, truncated=True)


def _raise_if(errors: list[str], truncated: bool = False) -> None:
    if errors:
        more = [f"(stopped after {MAX_ERRORS} problems)"] if truncated else []
        raise InputError("\n".join(errors + more))


def _required(text: str, column: str) -> str:
    if not text:
        raise _BadValue(column, "is empty")
    return text


_PLAIN_CHARS = "0123456789-."
MAX_AMOUNT = Decimal(10) ** 14  # what a Currency(16,2) field holds; more is a typo


def _decimal(text: str, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _BadValue(column, f"{text!r} is not a number") from None
    # Decimal() also takes "1_000", " 5", "1e9", "NaN", "Infinity": none is the
    # plain decimal the format promises, and a huge exponent would break rounding.
    # (Decimal accepted it, so digits, "-" and "." alone are in a plain order.)
    if text.strip(_PLAIN_CHARS):
        raise _BadValue(column, f"{text!r} is not a plain decimal number (like 1234.50)")
    if abs(value) >= MAX_AMOUNT:
        raise _BadValue(column, f"{text} is beyond any plausible amount (under 10^14)")
    return value


def _date(text: str, column: str, cache: dict[str, date]) -> date:
    """Parse ``YYYY-MM-DD`` on a cache miss (deals share few distinct dates)."""
    # fromisoformat also takes 20260301 and week dates; the format is YYYY-MM-DD.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise _BadValue(column, f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        day = cache[text] = date.fromisoformat(text)
    except ValueError:
        raise _BadValue(column, f"{text!r} is not a date (YYYY-MM-DD)") from None
    return day
