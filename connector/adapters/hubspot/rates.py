"""A HubSpot portal's exchange rates (the settings API's currencies).

Each rate says what one unit of a currency is worth in the company currency,
from the moment it takes effect; a later rate of the same day replaces an
earlier one. Cached like metadata (a day; a full sync reads them afresh).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from connector.adapters.base import cached_rates
from connector.adapters.hubspot.api import LIST_PAGE, HubSpotApi
from connector.adapters.hubspot.deals import portal_date
from connector.core.currency import Rates
from connector.errors import CrmConfigError, CrmError

_PATH = "/settings/v3/currencies"


def read_rates(api: HubSpotApi, *, refresh: bool = False) -> Rates | None:
    """The portal's rates, or None in a single-currency portal."""
    found = api.metadata.get("exchange_rates", lambda: _fetch(api), refresh=refresh)
    return cached_rates(
        found,
        source="HubSpot's currency settings",
        inverse=False,
        hint="add the {currency} exchange rate in HubSpot (Settings → Account → Currencies)",
    )


def _fetch(api: HubSpotApi) -> dict[str, Any] | None:
    try:
        _, company = api.request("objects", f"{_PATH}/company-currency")
        listed = list(api.listing("objects", f"{_PATH}/exchange-rates", [("limit", LIST_PAGE)]))
    except CrmError as error:
        if error.status == 403:
            raise CrmConfigError(
                "HubSpot: reading exchange rates needs the settings.currencies.read scope "
                "on the private app (or set currency_rates.source back to file)",
                status=error.status,
                code=error.code,
            ) from None
        raise
    base = str((company or {}).get("currencyCode") or "")
    latest: dict[tuple[str, date], tuple[str, str]] = {}
    for rate in listed:
        if str(rate.get("toCurrencyCode")) != base or rate.get("conversionRate") is None:
            continue
        moment = str(rate.get("effectiveAt") or "1970-01-01T00:00:00Z")
        key = (str(rate["fromCurrencyCode"]), portal_date(moment, api.settings.timezone))
        if key not in latest or latest[key][0] < moment:
            latest[key] = (moment, str(rate["conversionRate"]))
    rows: dict[str, list[list[str]]] = {}
    for (code, day), (_, value) in sorted(latest.items()):
        rows.setdefault(code, []).append([day.isoformat(), value])
    return {"base": base, "rows": rows} if base else None
