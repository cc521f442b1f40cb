"""A Salesforce org's exchange rates, as the calculation converts deals with them.

``CurrencyType`` gives each currency's ``ConversionRate`` (units of it per one
unit of the corporate currency) from the beginning; with advanced currency
management, ``DatedConversionRate`` replaces it from each ``StartDate``. Both
are cached like metadata (a day; a full sync reads them afresh).
"""

from __future__ import annotations

from typing import Any

from connector.adapters.base import cached_rates
from connector.adapters.salesforce.api import SalesforceApi
from connector.core.currency import Rates
from connector.errors import CrmError


def read_rates(api: SalesforceApi, *, refresh: bool = False) -> Rates | None:
    """The org's rates, or None in a single-currency org (no ``CurrencyType``)."""
    found = api.metadata.get("exchange_rates", lambda: _fetch(api), refresh=refresh)
    return cached_rates(
        found,
        source="Salesforce's currency table (CurrencyType, DatedConversionRate)",
        inverse=True,  # ConversionRate: units of the currency per corporate unit
        hint="add the {currency} rate in Salesforce (Setup → Manage Currencies)",
    )


def _fetch(api: SalesforceApi) -> dict[str, Any] | None:
    try:
        types = list(api.query("SELECT IsoCode, ConversionRate, IsCorporate FROM CurrencyType"))
    except CrmError as error:
        if error.code == "INVALID_TYPE":
            return None  # not a multi-currency org
        raise
    corporate = next((str(r["IsoCode"]) for r in types if r.get("IsCorporate")), None)
    if corporate is None:
        return None
    # CurrencyType's rate holds from the beginning; dated rates replace it from theirs.
    rows = {str(r["IsoCode"]): [["0001-01-01", str(r["ConversionRate"])]] for r in types}
    dated: dict[str, list[list[str]]] = {}
    try:
        for row in api.query("SELECT IsoCode, ConversionRate, StartDate FROM DatedConversionRate"):
            dated.setdefault(str(row["IsoCode"]), []).append(
                [str(row["StartDate"]), str(row["ConversionRate"])]
            )
    except CrmError as error:
        if error.code != "INVALID_TYPE":
            raise
    for code, own in dated.items():
        rows[code] = [*rows.get(code, [])[:1], *own]
    return {"base": corporate, "rows": rows}
