"""Webhook delivery as HubSpot does it: batched, signed, retried with growing gaps."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 100
# HubSpot retries a delivery that failed to connect, timed out, or was answered with any
# 4xx or 5xx status (its webhooks documentation); only a 2xx ends it.
FINAL_STATUSES: frozenset[int] = frozenset()
SUBSCRIPTION_IDS = {
    "deal.creation": 2_101_001,
    "deal.propertyChange": 2_101_002,
    "deal.deletion": 2_101_003,
}
# HubSpot decodes exactly these escapes in the URI before signing (v3).
_URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


# Loopback listeners only: never route deliveries through an environment proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def signing_uri(uri: str) -> str:
    for escaped, plain in _URI_DECODES.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    return uri


def signature_v3(client_secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    source = f"{method}{signing_uri(uri)}{body}{timestamp}".encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_v1(client_secret: str, body: str) -> str:
    return hashlib.sha256(f"{client_secret}{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One POST to the webhook URL and how it went."""

    attempt: int
    events: int
    status: int | None  # None: no HTTP answer (refused, timed out)
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDispatcher:
    """A background thread that posts queued events and retries the failures."""

    def __init__(
        self,
        client_secret: str,
        *,
        portal_id: int,
        app_id: int,
        url: str | None = None,
        retry_base_s: float = 1.0,
        max_attempts: int = 10,
        timeout_s: float = 5.0,
    ) -> None:
        self.client_secret = client_secret
        self.portal_id = portal_id
        self.app_id = app_id
        self.url = url
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.deliveries: list[Delivery] = []
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.dropped = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._retries: list[tuple[float, int, int, list[dict[str, Any]]]] = []
        self._sequence = itertools.count()
        self._event_ids = itertools.count(1)
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- producer side ---------------------------------------------------------------

    def enqueue(self, events: list[dict[str, Any]]) -> None:
        with self._cond:
            for event in events:
                stamped = {
                    "eventId": next(self._event_ids),
                    "subscriptionId": SUBSCRIPTION_IDS.get(event["subscriptionType"], 0),
                    "portalId": self.portal_id,
                    "appId": self.app_id,
                    **event,
                }
                self.recent_events.append(stamped)
                if self.url:
                    self._pending.append(stamped)
            self._cond.notify_all()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="hubspot-webhooks")
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)
            self._thread = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued, in flight or waiting for a retry."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._retries or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # --- delivery thread --------------------------------------------------------------

    def _next_batch(self) -> tuple[int, list[dict[str, Any]]] | None:
        """Wait for work; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._retries and self._retries[0][0] <= now:
                    _, _, attempt, events = heapq.heappop(self._retries)
                    self._in_flight += 1
                    return attempt, events
                if self._pending:
                    batch = [
                        self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))
                    ]
                    self._in_flight += 1
                    return 0, batch
                wait = self._retries[0][0] - now if self._retries else None
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while True:
            work = self._next_batch()
            if work is None:
                return
            attempt, events = work
            delivery = self._post(attempt, events)
            with self._cond:
                self.deliveries.append(delivery)
                retry = not delivery.acknowledged and delivery.status not in FINAL_STATUSES
                if retry and attempt + 1 < self.max_attempts:
                    due = time.monotonic() + self.retry_base_s * 2**attempt
                    heapq.heappush(self._retries, (due, next(self._sequence), attempt + 1, events))
                elif not delivery.acknowledged:
                    self.dropped += len(events)
                self._in_flight -= 1
                self._cond.notify_all()

    def _post(self, attempt: int, events: list[dict[str, Any]]) -> Delivery:
        url = self.url
        if not url:
            return Delivery(attempt, len(events), None, "no webhook URL")
        payload = [_ordered(event, attempt) for event in events]
        body = json.dumps(payload, separators=(",", ":"))
        timestamp = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": (
                "HubSpot Connect 2.0 (http://dev.hubspot.com/) "
                "(namespace: webhooks-nio-http-client)"
            ),
            "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature": signature_v1(self.client_secret, body),
            "X-HubSpot-Signature-v3": signature_v3(
                self.client_secret, "POST", url, body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as reply:
                reply.read()
                return Delivery(attempt, len(events), reply.status)
        except urllib.error.HTTPError as error:
            return Delivery(attempt, len(events), error.code, str(error.reason))
        except (OSError, TimeoutError) as error:
            return Delivery(attempt, len(events), None, f"{type(error).__name__}: {error}")


def _ordered(event: dict[str, Any], attempt: int) -> dict[str, Any]:
    """The event in HubSpot's field order, with this attempt's number."""
    out: dict[str, Any] = {}
    for key in ("eventId", "subscriptionId", "portalId", "appId", "occurredAt", "subscriptionType"):
        out[key] = event[key]
    out["attemptNumber"] = attempt
    for key in ("objectId", "propertyName", "propertyValue", "changeSource", "sourceId"):
        if key in event:
            out[key] = event[key]
    return out
