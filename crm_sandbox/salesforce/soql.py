"""SOQL, the subset the connector and its tests use: a tokenizer and a recursive-descent parser.

Grammar (keywords case-insensitive)::

    query      := SELECT select FROM name [WHERE or_expr] [ORDER BY order (',' order)*]
                  [LIMIT int] [OFFSET int]
    select     := COUNT '(' ')' | field (',' field)*
    or_expr    := and_expr (OR and_expr)*        -- AND and OR may not be mixed
    and_expr   := not_expr (AND not_expr)*          without parentheses, as in SOQL
    not_expr   := NOT not_expr | '(' or_expr ')' | comparison
    comparison := field (op value | [NOT] IN '(' value (',' value)* ')' | LIKE string)
    order      := field [ASC | DESC] [NULLS (FIRST | LAST)]

Values: 'strings' (backslash escapes), numbers, TRUE, FALSE, NULL, date literals
(2026-01-01) and datetime literals (2026-01-01T00:00:00Z, or with an offset
such as +02:00). Parsing knows nothing about objects or fields; the store checks
names and types and reports them with the position kept in each node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "TRUE",
        "FALSE",
        "NULL",
    }
)
COMPARISONS = ("=", "!=", "<>", "<=", ">=", "<", ">")

TokenKind = Literal[
    "ident", "keyword", "string", "number", "date", "datetime", "op", "(", ")", ",", "eof"
]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<quote>')
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "%": "\\%",  # kept escaped: only LIKE gives \% and \_ a meaning
    "_": "\\_",
}


class SoqlError(Exception):
    """A query Salesforce would refuse, with its error code and the offending position."""

    def __init__(self, code: str, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position

    def render(self, soql: str) -> str:
        """Salesforce's message layout: the line, a caret, Row/Column, then the reason."""
        if self.position is None:
            return self.message
        before = soql[: self.position]
        row = before.count("\n") + 1
        line_start = before.rfind("\n") + 1
        column = self.position - line_start + 1
        line_end = soql.find("\n", self.position)
        line = soql[line_start : line_end if line_end >= 0 else len(soql)]
        caret = " " * (column - 1) + "^"
        return f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{self.message}"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    position: int
    value: object = None


def tokenize(soql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(soql):
        match = _TOKEN.match(soql, position)
        if match is None:
            raise SoqlError(
                "MALFORMED_QUERY",
                f"line 1:{position} no viable alternative at character '{soql[position]}'",
                position,
            )
        group = match.lastgroup
        text = match.group()
        if group == "quote":
            value, end = _string(soql, position)
            tokens.append(Token("string", soql[position:end], position, value))
            position = end
            continue
        if group == "datetime":
            tokens.append(Token("datetime", text, position, _datetime(text, position)))
        elif group == "date":
            tokens.append(Token("date", text, position, _date(text, position)))
        elif group == "number":
            tokens.append(Token("number", text, position, Decimal(text)))
        elif group == "ident":
            upper = text.upper()
            if upper in KEYWORDS:
                tokens.append(Token("keyword", upper, position))
            else:
                tokens.append(Token("ident", text, position))
        elif group == "op":
            tokens.append(Token("op", "!=" if text == "<>" else text, position))
        elif group == "punct":
            tokens.append(Token(text, text, position))  # type: ignore[arg-type]
        position = match.end()
    tokens.append(Token("eof", "<EOF>", len(soql)))
    return tokens


def _string(soql: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    position = start + 1
    while position < len(soql):
        char = soql[position]
        if char == "\\":
            if position + 1 >= len(soql):
                break
            escaped = soql[position + 1]
            if escaped not in _ESCAPES:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"Invalid string literal '{soql[start : position + 2]}'. "
                    "Illegal character sequence '\\" + escaped + "' in string literal.",
                    start,
                )
            chars.append(_ESCAPES[escaped])
            position += 2
            continue
        if char == "'":
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    raise SoqlError(
        "MALFORMED_QUERY",
        f"line 1:{len(soql)} mismatched character '<EOF>' expecting '''",
        start,
    )


def _date(text: str, position: int) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"invalid date: {text}", position) from None


def _datetime(text: str, position: int) -> datetime:
    try:
        main, zone = text[:19], text[19:]
        millis = 0
        if zone.startswith("."):
            digits = re.match(r"\.(\d{1,3})", zone)
            assert digits is not None
            millis = int(digits.group(1).ljust(3, "0"))
            zone = zone[digits.end() :]
        moment = datetime.fromisoformat(main).replace(microsecond=millis * 1000)
        if zone == "Z":
            return moment.replace(tzinfo=UTC)
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return moment.replace(tzinfo=offset).astimezone(UTC)
    except (ValueError, AssertionError):
        raise SoqlError("MALFORMED_QUERY", f"invalid datetime: {text}", position) from None


# -- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    name: str
    position: int


ValueKind = Literal["string", "number", "date", "datetime", "boolean", "null"]


@dataclass(frozen=True)
class Value:
    kind: ValueKind
    value: object
    position: int


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # one of COMPARISONS (with <> as !=), "IN", "NOT IN", "LIKE"
    values: tuple[Value, ...]


@dataclass(frozen=True)
class BoolOp:
    op: Literal["AND", "OR"]
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    fields: tuple[FieldRef, ...]  # empty for COUNT()
    count: bool
    sobject: str
    sobject_position: int
    where: Condition | None
    order_by: tuple[OrderKey, ...]
    limit: int | None
    offset: int | None


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.current
        return SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}'", token.position)

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: TokenKind) -> Token:
        if self.current.kind != kind:
            raise self.unexpected()
        return self.advance()

    def query(self) -> Query:
        self.keyword("SELECT")
        fields: list[FieldRef] = []
        count = False
        if (
            self.current.kind == "ident"
            and self.current.text.upper() == "COUNT"
            and self.tokens[self.index + 1].kind == "("
        ):
            self.advance()  # COUNT
            self.advance()  # (
            if self.tokens[self.index].kind != ")":
                raise SoqlError(
                    "MALFORMED_QUERY",
                    "only COUNT() is supported by this sandbox, not COUNT(field)",
                    self.tokens[self.index].position,
                )
            self.advance()
            count = True
        if not count:
            fields.append(self.field())
            while self.current.kind == ",":
                self.advance()
                fields.append(self.field())
        self.keyword("FROM")
        sobject = self.expect("ident")
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.or_expr()
        order: list[OrderKey] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.keyword("BY")
            order.append(self.order_key())
            while self.current.kind == ",":
                self.advance()
                order.append(self.order_key())
        limit = offset = None
        if self.at_keyword("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at_keyword("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.current.kind != "eof":
            raise self.unexpected()
        return Query(
            fields=tuple(fields),
            count=count,
            sobject=sobject.text,
            sobject_position=sobject.position,
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
        )

    def integer(self) -> int:
        token = self.expect("number")
        value = token.value
        assert isinstance(value, Decimal)
        if value != value.to_integral_value() or value < 0:
            raise self.unexpected(token)
        return int(value)

    def field(self) -> FieldRef:
        token = self.current
        if token.kind != "ident":
            raise self.unexpected()
        self.advance()
        return FieldRef(token.text, token.position)

    def order_key(self) -> OrderKey:
        field = self.field()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text == "DESC"
        nulls_first = not descending  # Salesforce's defaults
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().text == "FIRST"
        return OrderKey(field, descending, nulls_first)

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.not_expr())
        if len(items) > 1 and self.at_keyword("OR"):
            raise self.unexpected()  # SOQL wants parentheses when AND and OR meet
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def not_expr(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.not_expr())
        if self.current.kind == "(":
            self.advance()
            inner = self.or_expr()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.field()
        token = self.current
        if token.kind == "op":
            self.advance()
            return Comparison(field, token.text, (self.value(),))
        if self.at_keyword("LIKE"):
            self.advance()
            value = self.value()
            return Comparison(field, "LIKE", (value,))
        negated = False
        if self.at_keyword("NOT"):
            self.advance()
            negated = True
            if not self.at_keyword("IN"):
                raise self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect("(")
            values = [self.value()]
            while self.current.kind == ",":
                self.advance()
                values.append(self.value())
            self.expect(")")
            return Comparison(field, "NOT IN" if negated else "IN", tuple(values))
        raise self.unexpected()

    def value(self) -> Value:
        token = self.current
        if token.kind in ("string", "number", "date", "datetime"):
            self.advance()
            return Value(token.kind, token.value, token.position)
        if self.at_keyword("TRUE", "FALSE"):
            self.advance()
            return Value("boolean", token.text == "TRUE", token.position)
        if self.at_keyword("NULL"):
            self.advance()
            return Value("null", None, token.position)
        raise self.unexpected()


def parse(soql: str) -> Query:
    """Parse ``soql`` or raise :class:`SoqlError` (``MALFORMED_QUERY``) naming the position."""
    return _Parser(tokenize(soql)).query()
