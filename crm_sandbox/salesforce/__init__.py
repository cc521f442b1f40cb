"""A local Salesforce org over HTTPS that the real simple-salesforce talks to.

Usage::

    with SalesforceSandbox(seed=7, reps=12, deals=400, ca_path=tmp / "ca.pem") as org:
        sf = Salesforce(instance_url=org.url, session_id=org.token, session=org.session())
        sf.query("SELECT Id FROM Opportunity")
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from crm_sandbox.common import CallLog, Faults, ServerThread, apply_mutation, local_tls
from crm_sandbox.salesforce.app import SalesforceApp
from crm_sandbox.salesforce.org import Org, SalesforceApiError
from crm_sandbox.salesforce.outbound import OutboundMessages
from crm_sandbox.salesforce.schema import STAGE_LABELS, FieldDef, ValueError_
from crm_sandbox.seed import generate

__all__ = ["Org", "SalesforceSandbox"]


class SalesforceSandbox:
    """An emulated org seeded from ``seed``, served on loopback over TLS."""

    def __init__(
        self,
        *,
        seed: int = 7,
        reps: int = 12,
        deals: int = 400,
        year: int = 2026,
        today: date | None = None,  # deals close before it (default: the clock's day)
        token: str = "sandbox-salesforce-token",
        host: str = "127.0.0.1",
        port: int = 0,
        ca_path: Path | None = None,
        faults: Faults | None = None,
        daily_limit: int = 100_000,
        splits: bool = True,
        multicurrency: bool = False,
        forecasting: bool = True,
        outbound_url: str | None = None,
        outbound_first_retry_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.faults = faults or Faults(seed=seed)
        self.calls = CallLog()
        self.org = Org(
            generate(
                seed=seed,
                reps=reps,
                deals=deals,
                year=year,
                today=today or datetime.fromtimestamp(clock(), UTC).date(),
            ),
            splits=splits,
            multicurrency=multicurrency,
            forecasting=forecasting,
            clock=clock,
        )
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if ca_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spm-sf-sandbox-")
            ca_path = Path(self._tmp.name) / "sandbox-ca.pem"
        self.ca_path = ca_path
        self.outbound = (
            OutboundMessages(
                self.org, outbound_url, session_id=None, first_retry_s=outbound_first_retry_s
            )
            if outbound_url
            else None
        )
        # A fresh secret per run: only who started the sandbox may change its faults or data.
        self.admin_token = secrets.token_urlsafe(16)
        self.app = SalesforceApp(
            self.org,
            admin_token=self.admin_token,
            token=token,
            faults=self.faults,
            calls=self.calls,
            daily_limit=daily_limit,
            mutations=self.mutate,
            outbound=self.outbound.status if self.outbound is not None else None,
        )
        self._host, self._port = host, port
        self._server: ServerThread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SalesforceSandbox:
        tls = local_tls(self.ca_path)
        self._server = ServerThread(
            self.app, host=self._host, port=self._port, ssl_context=tls.context
        ).start()
        if self.outbound is not None:
            self.outbound.start()
        return self

    def stop(self) -> None:
        if self.outbound is not None:
            self.outbound.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SalesforceSandbox:
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
        """The instance URL (``https://127.0.0.1:PORT``)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return self._server.url

    @property
    def api_usage(self) -> int:
        return self.app.budget.used

    def session(self) -> requests.Session:
        """A requests session that trusts the sandbox CA whatever the environment says."""
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify
        session.verify = str(self.ca_path)
        return session

    def settings(self) -> dict[str, Any]:
        """What a client needs: the ``crm:`` config section and the environment."""
        return {
            "crm": {
                "type": "salesforce",
                "instance_url": self.url,
                "api_version": "62.0",
                "ca_bundle": str(self.ca_path),
            },
            "env": {
                "SPM_SALESFORCE_ACCESS_TOKEN": self.token,
                # What the webhook receiver checks outbound messages against.
                "SPM_SALESFORCE_ORG_ID": self.org.organization_id,
            },
            "org_id": self.org.organization_id,
            "admin_url": f"{self.url}/_sandbox",
            "admin_token": self.admin_token,
            "outbound_url": self.outbound.url if self.outbound is not None else None,
        }

    def wait_for_outbound(self, timeout: float = 10.0) -> bool:
        return self.outbound.wait_idle(timeout) if self.outbound is not None else True

    # -- views -------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        """The seeded people (the reps and managers), not the integration user."""
        integration = self.org.integration_user_id
        return [dict(r) for r in self.org.rows("User") if r["Id"] != integration]

    @property
    def integration_user_id(self) -> str:
        """The user the API session acts as: every write over the API is stamped with it."""
        return self.org.integration_user_id

    def opportunities(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [dict(r) for r in self.org.rows("Opportunity", include_deleted=include_deleted)]

    def splits(self) -> list[dict[str, Any]]:
        if "OpportunitySplit" not in self.org.records:
            return []
        return [dict(r) for r in self.org.rows("OpportunitySplit")]

    def quotas(self) -> list[dict[str, Any]]:
        """Collaborative Forecasts quotas (``ForecastingQuota``), amount and quantity rows."""
        if "ForecastingQuota" not in self.org.records:
            return []
        return [dict(r) for r in self.org.rows("ForecastingQuota")]

    def leads(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.org.rows("Lead")]

    def tasks(self) -> list[dict[str, Any]]:
        """Every task as ``{id, owner, subject, body, status, done}``."""
        return [
            {"id": r["Id"], "owner": r["OwnerId"], "subject": r["Subject"],
             "body": r["Description"] or "", "status": r["Status"], "done": r["IsClosed"]}
            for r in self.org.rows("Task")
        ]  # fmt: skip

    def complete_task(self, task_id: str) -> None:
        """The task's owner marks it completed."""
        with self.org.lock:
            self.org.update("Task", task_id, {"Status": "Completed"}, source="sandbox")

    def write_on_task(self, task_id: str, text: str) -> None:
        """The task's owner adds a line to its comments."""
        with self.org.lock:
            record = self.org.get("Task", task_id)
            body = f"{record.values.get('Description') or ''}\n{text}"
            self.org.update("Task", task_id, {"Description": body}, source="sandbox")

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """An admin moves a rep to another manager (a new team)."""
        with self.org.lock:
            self.org.update("User", user_id, {"ManagerId": manager_id}, source="sandbox")

    # -- mutations (what a sales rep or an admin does in the org) -----------------------------

    def _change(self, deal_id: str, values: dict[str, Any]) -> None:
        try:
            self.org.update("Opportunity", deal_id, values, source="sandbox")
        except ValueError_ as error:
            raise ValueError(f"{deal_id}: {error.code}: {error.message}") from None

    def close_deal(self, deal_id: str, *, won: bool = True, on: date | None = None) -> None:
        values: dict[str, Any] = {"StageName": STAGE_LABELS["won" if won else "lost"]}
        if on is not None:
            values["CloseDate"] = on.isoformat()
        self._change(deal_id, values)

    def set_amount(self, deal_id: str, amount: Decimal) -> None:
        self._change(deal_id, {"Amount": amount})

    def add_deal_field(self, name: str, kind: str, label: str) -> None:
        """An admin adds an Opportunity field in Setup, visible to administrators (the
        integration user among them): ``kind`` is a describe type (``date``, ``string``)."""
        with self.org.lock:
            self.org.objects["Opportunity"].add(
                FieldDef(name, kind, label, custom=name.endswith("__c"),
                         length=255 if kind == "string" else 0)
            )  # fmt: skip
            for record in self.org.records["Opportunity"].values():
                record.values.setdefault(name, None)

    def set_deal_field(self, deal_id: str, name: str, value: Any) -> None:
        """A rep fills in one of the deal's fields (an admin's own, say)."""
        self._change(deal_id, {name: value})

    def set_owner(self, deal_id: str, owner_id: str) -> None:
        self._change(deal_id, {"OwnerId": owner_id})

    def reverse_deal(self, deal_id: str) -> None:
        """A won deal lost after all (a cancellation): the stage goes back to Closed Lost."""
        record = self.org.opportunity(deal_id)
        if not record.values.get("IsWon"):
            raise ValueError(f"{deal_id} is not won, so it cannot be reversed")
        self._change(deal_id, {"StageName": STAGE_LABELS["lost"]})

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
        stage = (
            STAGE_LABELS["prospecting"] if won is None else STAGE_LABELS["won" if won else "lost"]
        )
        try:
            record = self.org.create(
                "Opportunity",
                {
                    "Name": name,
                    "OwnerId": owner_id,
                    "Amount": amount,
                    "CloseDate": close_date.isoformat(),
                    "StageName": stage,
                    "Type": type,
                },
                source="sandbox",
            )
        except ValueError_ as error:
            raise ValueError(f"{error.code}: {error.message}") from None
        return record.id

    def delete_deal(self, deal_id: str) -> None:
        self.org.delete("Opportunity", deal_id, source="sandbox")

    def mutate(self, change: dict[str, Any]) -> dict[str, Any]:
        """The admin endpoint's mutations: ``{"action": "close_deal", "id": "006…", …}``."""
        try:
            return apply_mutation(self, change, remove=("delete_deal", self.delete_deal))
        except SalesforceApiError as error:
            raise ValueError(f"{change.get('id', '')}: {error.message}") from None
