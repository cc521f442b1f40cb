"""A local HubSpot portal over HTTP that the real hubspot-api-client talks to.

Usage::

    with HubSpotSandbox(seed=7, reps=12, deals=400) as portal:
        client = HubSpot(access_token=portal.token, host=portal.url)
        client.crm.deals.basic_api.get_page(limit=100)
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

from crm_sandbox.common import CallLog, Faults, ServerThread, apply_mutation
from crm_sandbox.hubspot.app import HubSpotApp
from crm_sandbox.hubspot.portal import DEAL_TYPE_VALUES, OWNER_ID_BASE, TEAM_ID_BASE, Portal
from crm_sandbox.hubspot.records import (
    CONTACTS,
    DEALS,
    GOAL_TARGETS,
    TASKS,
    ApiError,
    PropertyDef,
)
from crm_sandbox.hubspot.webhooks import WebhookDispatcher
from crm_sandbox.seed import generate

__all__ = ["HubSpotSandbox", "Portal"]


class HubSpotSandbox:
    """An emulated portal seeded from ``seed``, served on loopback."""

    def __init__(
        self,
        *,
        seed: int = 7,
        reps: int = 12,
        deals: int = 400,
        year: int = 2026,
        today: date | None = None,  # deals close before it (default: today, in UTC)
        token: str = "sandbox-hubspot-token",
        client_secret: str = "sandbox-client-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        faults: Faults | None = None,
        users_custom_properties: bool = True,
        splits: bool = True,
        webhook_retry_base_s: float = 1.0,
        portal_id: int = 40_123_456,
        multicurrency: bool = False,  # EUR and GBP beside USD, with exchange rates
        clock: Callable[[], float] = time.time,  # the portal's now (its stamps, its search)
    ) -> None:
        self.token = token
        self.client_secret = client_secret
        self.faults = faults or Faults(seed=seed)
        self.calls = CallLog()
        self.portal = Portal(
            generate(
                seed=seed,
                reps=reps,
                deals=deals,
                year=year,
                today=today or datetime.now(UTC).date(),
            ),
            users_custom_properties=users_custom_properties,
            splits_enabled=splits,
            portal_id=portal_id,
            multicurrency=multicurrency,
            clock=clock,
        )
        self.webhooks = WebhookDispatcher(
            client_secret,
            portal_id=self.portal.portal_id,
            app_id=self.portal.app_id,
            url=webhook_url,
            retry_base_s=webhook_retry_base_s,
        )
        self.portal.listeners.append(self.webhooks.enqueue)
        # A fresh secret per run: only who started the sandbox may change its faults or data.
        self.admin_token = secrets.token_urlsafe(16)
        self.app = HubSpotApp(
            self.portal,
            admin_token=self.admin_token,
            token=token,
            faults=self.faults,
            calls=self.calls,
            mutations=self.mutate,
            webhooks=self._webhook_status,
        )
        self._host, self._port = host, port
        self._server: ServerThread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HubSpotSandbox:
        self._server = ServerThread(self.app, host=self._host, port=self._port).start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self.webhooks.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> HubSpotSandbox:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to pass as ``HubSpot(host=...)``."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return self._server.url

    def settings(self) -> dict[str, Any]:
        """What a client needs: the ``crm:`` config section and the environment."""
        return {
            "crm": {"type": "hubspot", "base_url": self.url},
            "env": {
                "SPM_HUBSPOT_ACCESS_TOKEN": self.token,
                "SPM_HUBSPOT_CLIENT_SECRET": self.client_secret,
            },
            "portal_id": self.portal.portal_id,
            "webhook_url": self.webhooks.url,
            "admin_url": f"{self.url}/_sandbox",
            "admin_token": self.admin_token,
        }

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.wait_idle(timeout)

    def _webhook_status(self) -> dict[str, Any]:
        return {
            "url": self.webhooks.url,
            "deliveries": [d.__dict__ for d in self.webhooks.deliveries[-200:]],
            "dropped": self.webhooks.dropped,
        }

    # -- views --------------------------------------------------------------------------------

    def deals(self, *, archived: bool = False) -> list[dict[str, str]]:
        """Every deal's properties (as HubSpot stores them: text), with its id."""
        with self.portal.lock:
            return [
                {**r.properties, "id": r.id}
                for r in self.portal.stores[DEALS].live(archived=archived)
            ]

    def owners(self) -> list[dict[str, Any]]:
        return [self.portal.owners[i] for i in self.portal.owner_ids]

    def goal_targets(self) -> list[dict[str, str]]:
        """Every goal target's properties, with its id."""
        with self.portal.lock:
            return [{**r.properties, "id": r.id} for r in self.portal.stores[GOAL_TARGETS].live()]

    def contacts(self) -> list[dict[str, str]]:
        with self.portal.lock:
            return [{**r.properties, "id": r.id} for r in self.portal.stores[CONTACTS].live()]

    def tasks(self) -> list[dict[str, Any]]:
        """Every task as ``{id, owner, subject, body, status, done}``."""
        with self.portal.lock:
            return [
                {"id": r.id, "owner": r.properties.get("hubspot_owner_id"),
                 "subject": r.properties.get("hs_task_subject"),
                 "body": r.properties.get("hs_task_body") or "",
                 "status": r.properties.get("hs_task_status"),
                 "done": r.properties.get("hs_task_status") == "COMPLETED"}
                for r in self.portal.stores[TASKS].live()
            ]  # fmt: skip

    def _task(self, task_id: str, values: dict[str, str]) -> None:
        with self.portal.lock:
            record = self.portal.get(TASKS, task_id)
            if record is None:
                raise ValueError(f"no task {task_id}")
            self.portal.update(TASKS, record, values, source="CRM_UI")

    def complete_task(self, task_id: str) -> None:
        """The task's owner marks it completed."""
        self._task(task_id, {"hs_task_status": "COMPLETED"})

    def write_on_task(self, task_id: str, text: str) -> None:
        """The task's owner adds a paragraph to its notes (HubSpot keeps them as HTML)."""
        record = self.portal.get(TASKS, task_id)
        body = (record.properties.get("hs_task_body") or "") if record else ""
        self._task(task_id, {"hs_task_body": f"{body}<p>{html.escape(text)}</p>"})

    def team_managers(self) -> dict[str, str]:
        """Each seeded team's manager (HubSpot's teams name none): team id → owner id."""
        return {
            str(TEAM_ID_BASE + rep.index): str(OWNER_ID_BASE + rep.index)
            for rep in self.portal.org.reps
            if rep.manager_index is None
        }

    def set_team(self, owner_id: str, team: dict[str, Any] | None) -> None:
        """An admin moves an owner to another team (``{"id", "name"}``), or out of any."""
        with self.portal.lock:
            self.portal.owners[owner_id]["teams"] = [{**team, "primary": True}] if team else []

    # -- mutations ----------------------------------------------------------------------------

    def close_deal(self, deal_id: str, *, won: bool = True, on: date | None = None) -> None:
        self.portal.close_deal(deal_id, won=won, on=on)

    def add_deal_property(self, name: str, kind: str, label: str) -> None:
        """An admin adds a deal property in Settings (``kind``: ``date`` or ``string``)."""
        field_type = {"date": "date", "string": "text"}[kind]
        with self.portal.lock:
            self.portal.properties[DEALS][name] = PropertyDef(
                name, label, kind, field_type, "dealinformation", hubspot_defined=False
            )

    def set_deal_property(self, deal_id: str, name: str, value: str) -> None:
        """A rep fills in one of the deal's properties."""
        self.portal.mutate(deal_id, {name: value})

    def set_currency(self, deal_id: str, code: str) -> None:
        """A rep sets the deal's currency (one of the portal's currencies)."""
        self.portal.mutate(deal_id, {"deal_currency_code": code})

    def set_amount(self, deal_id: str, amount: Decimal) -> None:
        self.portal.mutate(deal_id, {"amount": format(amount, "f")})

    def set_owner(self, deal_id: str, owner_id: str) -> None:
        self.portal.mutate(deal_id, {"hubspot_owner_id": owner_id})

    def reverse_deal(self, deal_id: str) -> None:
        self.portal.reverse_deal(deal_id)

    def create_deal(
        self,
        owner_id: str,
        amount: Decimal,
        close_date: date,
        *,
        won: bool | None = True,
        name: str = "Sandbox deal",
        type: str = "New Business",
    ) -> str:
        stage = "appointmentscheduled" if won is None else "closedwon" if won else "closedlost"
        record = self.portal.create_deal(
            name=name,
            amount=amount,
            owner_id=owner_id,
            stage=stage,
            close_date=close_date,
            deal_type=DEAL_TYPE_VALUES.get(type, "newbusiness"),
        )
        return record.id

    def archive_deal(self, deal_id: str) -> None:
        self.portal.archive_deal(deal_id)

    def mutate(self, change: dict[str, Any]) -> dict[str, Any]:
        """The admin endpoint's mutations: ``{"action": "close_deal", "id": "9000000001", …}``."""
        try:
            return apply_mutation(self, change, remove=("archive_deal", self.archive_deal))
        except ApiError as error:
            raise ValueError(f"{change.get('id', '')}: {error.body['message']}") from None
