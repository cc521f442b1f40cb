"""Reading HubSpot deals: listed in full, searched since a moment, or batch-read by id;
deleted (archived) deals read apart; and their splits."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connector.adapters.base import missing_after_refresh
from connector.adapters.hubspot.api import (
    BATCH_SIZE,
    LIST_PAGE,
    SEARCH_CAP,
    SEARCH_PAGE,
    HubSpotApi,
)
from connector.adapters.hubspot.values import decimal, moment, ms, value_text
from connector.core.fields import HUBSPOT_DEAL_INPUTS, FieldSpec
from connector.core.models import CrmDeal, CrmSplit, Outcome
from connector.errors import CrmAuthError, CrmConfigError, CrmError

_DEAL_PROPERTIES = HUBSPOT_DEAL_INPUTS


def portal_date(text: str, zone: ZoneInfo) -> date:
    """A HubSpot date or datetime (epoch ms or ISO) as a date in the configured time zone."""
    if len(text) == 10 and text[4] == "-":
        return date.fromisoformat(text)
    return moment(text).astimezone(zone).date()


class DealReader:
    def __init__(self, api: HubSpotApi) -> None:
        self.api = api

    def changed_since(
        self, specs: Sequence[FieldSpec], since: datetime | None
    ) -> Iterator[CrmDeal]:
        """Deals changed at or after ``since`` (every deal when None), deleted ones too."""
        self.api.require("deals", specs)
        names = [*_DEAL_PROPERTIES, *self._named(), *(s.hubspot for s in specs)]
        types = self._deal_types()
        outcomes = self.api.outcomes()
        if since is None:
            rows = self._list_deals(names, archived=False)
        else:
            rows = self._search_deals(names, since)
        for row in rows:
            deal = self._deal(row, specs, types, outcomes)
            if deal is not None:
                yield deal
        for row in self._list_deals(names, archived=True):
            if since is not None and moment(row.get("archivedAt")) < since:
                continue
            deal = self._deal(row, specs, types, outcomes, deleted=True)
            if deal is not None:
                yield deal

    def _named(self) -> list[str]:
        """The deal properties the plans name, each checked to exist: HubSpot leaves out a
        property it does not know without a word, and a filter on it would never match."""
        wanted = [p for p in self.api.settings.deal_properties if p not in _DEAL_PROPERTIES]
        missing = missing_after_refresh(
            wanted, lambda refresh: self.api.properties("deals", refresh=refresh)
        )
        if missing:
            raise CrmConfigError(
                f"HubSpot: the plans name the deal property {', '.join(missing)} (in a filter, "
                "or a payment holdback's paid_on), which this portal does not have: check the "
                "internal names in spm.yaml"
            )
        return wanted

    def _deal_types(self) -> dict[str, str]:
        return {
            str(o.get("value")): str(o.get("label"))
            for o in self.api.properties("deals").get("dealtype", {}).get("options", [])
        }

    def by_id(self, specs: Sequence[FieldSpec], deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        """These deals as the portal holds them now, deleted (archived) ones included."""
        self.api.require("deals", specs)
        names = [*_DEAL_PROPERTIES, *self._named(), *(s.hubspot for s in specs)]
        types, outcomes = self._deal_types(), self.api.outcomes()
        wanted = sorted(set(deal_ids))
        for start in range(0, len(wanted), BATCH_SIZE):
            batch = wanted[start : start + BATCH_SIZE]
            found: set[str] = set()
            for row in self._batch_read(batch, names, archived=False):
                found.add(str(row["id"]))
                deal = self._deal(row, specs, types, outcomes)
                if deal is not None:
                    yield deal
            missing = [deal_id for deal_id in batch if deal_id not in found]
            if missing:  # deleted (archived) deals are read apart
                for row in self._batch_read(missing, names, archived=True):
                    deal = self._deal(row, specs, types, outcomes, deleted=True)
                    if deal is not None:
                        yield deal

    def _batch_read(
        self, ids: Sequence[str], names: Sequence[str], *, archived: bool
    ) -> list[dict[str, Any]]:
        _, answer = self.api.request(
            "deals",
            "/crm/v3/objects/deals/batch/read",
            "POST",
            query=[("archived", "true" if archived else "false")],
            body={"inputs": [{"id": i} for i in ids], "properties": list(names)},
        )
        results: list[dict[str, Any]] = (answer or {}).get("results", [])
        return results

    def _list_deals(self, names: Sequence[str], *, archived: bool) -> Iterator[dict[str, Any]]:
        query = [
            ("limit", LIST_PAGE),
            ("properties", ",".join(names)),
            ("archived", "true" if archived else "false"),
        ]
        return self.api.listing("deals", "/crm/v3/objects/deals", query)

    def _search_deals(self, names: Sequence[str], since: datetime) -> Iterator[dict[str, Any]]:
        """Deals modified at or after ``since``, oldest first, in windows under the search cap.

        A window pages until the cap; the next window starts at the last stamp read
        (inclusive, so deals sharing that millisecond are not missed) and skips the
        deals already given.
        """
        start_ms = int(since.timestamp() * 1000)
        given: set[str] = set()
        while True:
            after = 0
            last_ms = start_ms
            fresh = 0
            while True:
                body = {
                    "filterGroups": [
                        {
                            "filters": [
                                {
                                    "propertyName": "hs_lastmodifieddate",
                                    "operator": "GTE",
                                    "value": str(start_ms),
                                }
                            ]
                        }
                    ],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": list(names),
                    "limit": SEARCH_PAGE,
                    "after": str(after),
                }
                _, page = self.api.request(
                    "deals", "/crm/v3/objects/deals/search", "POST", body=body, search=True
                )
                results = page.get("results", [])
                for row in results:
                    last_ms = max(last_ms, ms(row["properties"].get("hs_lastmodifieddate")))
                    if row["id"] in given:
                        continue
                    given.add(row["id"])
                    fresh += 1
                    yield row
                after += len(results)
                more = (page.get("paging") or {}).get("next")
                if not more:
                    if after >= SEARCH_CAP and int(page.get("total", 0)) > after:
                        break  # the cap, not the end: open the next window
                    return
                if after + SEARCH_PAGE > SEARCH_CAP:
                    break
            if fresh == 0:
                raise CrmError(
                    f"HubSpot: more than {SEARCH_CAP} deals share the modification time "
                    f"{last_ms}; run `spm-connector sync --full`"
                )
            start_ms = last_ms

    def _deal(
        self,
        row: Mapping[str, Any],
        specs: Sequence[FieldSpec],
        types: Mapping[str, str],
        outcomes: Mapping[tuple[str, str], Outcome],
        *,
        deleted: bool = False,
    ) -> CrmDeal | None:
        props: Mapping[str, Any] = row.get("properties") or {}
        pipeline = str(props.get("pipeline") or "")
        if self.api.settings.pipelines is not None and pipeline not in self.api.settings.pipelines:
            return None
        stage = str(props.get("dealstage") or "")
        outcome = outcomes.get((pipeline, stage))
        if outcome is None:  # a stage added since we cached the pipelines?
            outcome = self.api.outcomes(refresh=True).get((pipeline, stage))
        if outcome is None:  # a stage HubSpot does not list: trust its own flags
            won = str(props.get("hs_is_closed_won") or "").lower() == "true"
            closed = str(props.get("hs_is_closed") or "").lower() == "true"
            outcome = Outcome.WON if won else Outcome.LOST if closed else Outcome.OPEN
        amount_text = props.get("amount")
        amount = decimal(str(amount_text)) if amount_text not in (None, "") else None
        close = props.get("closedate")
        modified = props.get("hs_lastmodifieddate") or row.get("updatedAt")
        deal_type = props.get("dealtype")
        properties = {
            key: str(value)
            for key, value in (
                ("Name", props.get("dealname")),
                ("StageName", stage),
                ("Pipeline", pipeline),
                ("Type", types.get(str(deal_type), deal_type) if deal_type else None),
                *((name, props.get(name)) for name in self.api.settings.deal_properties),
            )
            if value
        }
        return CrmDeal(
            id=str(row["id"]),
            owner_id=str(props.get("hubspot_owner_id") or ""),
            amount=amount,
            close_date=self._date(close) if close else None,
            outcome=outcome,
            modified_at=moment(modified),
            currency=props.get("deal_currency_code") or None,
            type=properties.get("Type"),
            name=str(props.get("dealname") or ""),
            deleted=deleted,
            properties=properties,
            fields={s.key: value_text(s, props.get(s.hubspot)) for s in specs},
            created_date=self._date(str(props["createdate"])) if props.get("createdate") else None,
        )

    def _date(self, text: str) -> date:
        return portal_date(text, self.api.settings.timezone)

    def splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        wanted = sorted(deal_ids)  # the engine asks only for deals that are or were won
        if not wanted:
            return iter(())
        try:
            first = self._split_batch(wanted[:BATCH_SIZE])
        except CrmAuthError as error:
            if error.status == 403:
                return None  # the portal has no deal splits (or the token may not read them)
            raise

        def every() -> Iterator[CrmSplit]:
            yield from first
            for start in range(BATCH_SIZE, len(wanted), BATCH_SIZE):
                yield from self._split_batch(wanted[start : start + BATCH_SIZE])

        return every()

    def _split_batch(self, ids: Sequence[str]) -> list[CrmSplit]:
        _, answer = self.api.request(
            "deals",
            "/crm/objects/v3/deals/splits/batch/read",
            "POST",
            body={"inputs": [{"id": deal_id} for deal_id in ids]},
        )
        splits = []
        for result in answer.get("results", []):
            for split in result.get("splits", []):
                props = split.get("properties") or {}
                fraction = decimal(str(props.get("hs_deal_split_percentage", "0")))
                splits.append(
                    CrmSplit(
                        deal_id=str(result["id"]),
                        rep_id=str(props.get("hubspot_owner_id")),
                        percent=fraction * 100,
                    )
                )
        return splits
