"""Outbound messages as Salesforce sends them: SOAP ``notifications``, acknowledged or retried.

A workflow rule's outbound message fires on every opportunity change. Up to
100 notifications travel in one envelope; the listener must answer 200 with
``<Ack>true</Ack>``, otherwise the same envelope is sent again after a growing
gap (Salesforce keeps trying for 24 hours; the gaps here are configurable so
tests stay fast). Delivery is at least once: a notification id never changes
between attempts, so receivers can deduplicate on it.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from crm_sandbox.salesforce.org import Change, Org, soap_value
from crm_sandbox.salesforce.schema import make_id

MAX_NOTIFICATIONS = 100
DEFAULT_FIELDS = (
    "Id",
    "OwnerId",
    "Amount",
    "CloseDate",
    "StageName",
    "IsWon",
    "IsClosed",
    "SystemModstamp",
    "LastModifiedById",
)
_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_NOTIFICATIONS = "http://soap.sforce.com/2005/09/outbound"
_SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one envelope."""

    attempt: int
    notification_ids: tuple[str, ...]
    status: int  # HTTP status, 0 when the listener could not be reached
    acknowledged: bool


class OutboundMessages:
    """Queues opportunity changes and delivers them from a background thread."""

    def __init__(
        self,
        org: Org,
        url: str,
        *,
        fields: tuple[str, ...] = DEFAULT_FIELDS,
        session_id: str | None = None,
        first_retry_s: float = 0.5,
        max_retry_s: float = 60.0,
        max_attempts: int = 10,
        timeout_s: float = 5.0,
    ) -> None:
        self.org = org
        self.url = url
        self.fields = fields
        self.session_id = session_id
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.action_id = make_id("04k", org.seed, 1)
        self.deliveries: list[Delivery] = []
        self.given_up: list[tuple[str, ...]] = []
        self._ids = itertools.count(1)
        self._queue: deque[tuple[str, str]] = deque()  # (notification id, opportunity id)
        self._retries: list[tuple[float, int, list[tuple[str, str]]]] = []
        self._wake = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="sf-outbound")
        org.listeners.append(self.changed)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=5)
        if self.changed in self.org.listeners:
            self.org.listeners.remove(self.changed)

    def changed(self, changes: list[Change]) -> None:
        with self._wake:
            for change in changes:
                if change.sobject == "Opportunity":
                    notification = make_id("04l", self.org.seed, next(self._ids))
                    self._queue.append((notification, change.record_id))
            self._wake.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued, waiting for a retry, or in flight."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue or self._retries or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def status(self) -> dict[str, Any]:
        with self._wake:
            return {
                "url": self.url,
                "queued": len(self._queue),
                "retrying": sum(len(batch) for _, _, batch in self._retries),
                "deliveries": [d.__dict__ for d in self.deliveries[-200:]],
                "given_up": [list(ids) for ids in self.given_up],
            }

    # -- the delivery thread ---------------------------------------------------------------

    def _next(self) -> tuple[int, list[tuple[str, str]]] | None:
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                due = [r for r in self._retries if r[0] <= now]
                if due:
                    entry = min(due)
                    self._retries.remove(entry)
                    self._busy = True
                    return entry[1], entry[2]
                if self._queue:
                    batch = [
                        self._queue.popleft()
                        for _ in range(min(MAX_NOTIFICATIONS, len(self._queue)))
                    ]
                    self._busy = True
                    return 1, batch
                wait = min((r[0] for r in self._retries), default=now + 0.5) - now
                self._wake.wait(max(wait, 0.01))
        return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            attempt, batch = job
            delivery = self._post(attempt, batch)
            with self._wake:
                self.deliveries.append(delivery)
                if not delivery.acknowledged:
                    if attempt >= self.max_attempts:
                        self.given_up.append(delivery.notification_ids)
                    else:
                        gap = min(self.first_retry_s * 2 ** (attempt - 1), self.max_retry_s)
                        self._retries.append((time.monotonic() + gap, attempt + 1, batch))
                self._busy = False
                self._wake.notify_all()

    def envelope(self, batch: list[tuple[str, str]]) -> bytes:
        """The SOAP body for these notifications, with each opportunity's current values."""
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<soapenv:Envelope xmlns:soapenv="{_SOAP}" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
            "<soapenv:Body>",
            f'<notifications xmlns="{_NOTIFICATIONS}">',
            # 18 characters, as the WSDL's ID type and real deliveries carry them.
            f"<OrganizationId>{self.org.organization_id}</OrganizationId>",
            f"<ActionId>{self.action_id}</ActionId>",
        ]
        if self.session_id is not None:
            parts.append(f"<SessionId>{escape(self.session_id)}</SessionId>")
        else:
            parts.append('<SessionId xsi:nil="true"/>')
        parts.append(
            f"<EnterpriseUrl>https://sandbox.invalid/services/Soap/c/{self.org.api_version}/"
            f"{self.org.organization_id[:15]}</EnterpriseUrl>"
        )
        parts.append(
            f"<PartnerUrl>https://sandbox.invalid/services/Soap/u/{self.org.api_version}/"
            f"{self.org.organization_id[:15]}</PartnerUrl>"
        )
        definition = self.org.objects["Opportunity"]
        with self.org.lock:
            for notification, deal_id in batch:
                record = self.org.records["Opportunity"].get(deal_id)
                values = record.values if record is not None else {"Id": deal_id}
                parts.append(f"<Notification><Id>{notification}</Id>")
                parts.append(f'<sObject xsi:type="sf:Opportunity" xmlns:sf="{_SOBJECT}">')
                for name in self.fields:
                    f = definition.field(name)
                    value = values.get(f.name) if f is not None else None
                    if f is None or value is None:
                        continue
                    parts.append(f"<sf:{f.name}>{escape(soap_value(f, value))}</sf:{f.name}>")
                parts.append("</sObject></Notification>")
        parts += ["</notifications>", "</soapenv:Body>", "</soapenv:Envelope>"]
        return "".join(parts).encode()

    def _post(self, attempt: int, batch: list[tuple[str, str]]) -> Delivery:
        ids = tuple(notification for notification, _ in batch)
        request = urllib.request.Request(
            self.url,
            data=self.envelope(batch),
            method="POST",
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        )
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            return Delivery(attempt, ids, error.code, False)
        except (urllib.error.URLError, OSError):
            return Delivery(attempt, ids, 0, False)
        return Delivery(attempt, ids, status, status == 200 and acknowledged(body))


def acknowledged(body: bytes) -> bool:
    """True when a listener's answer is a ``notificationsResponse`` holding ``Ack`` true."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return False
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Ack":
            return (element.text or "").strip().lower() == "true"
    return False
