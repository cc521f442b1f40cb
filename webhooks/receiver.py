"""What every endpoint shares: settings, the inbox, metrics, and how a request is read.

``init_app`` attaches one :class:`Receiver` to the app (Flask's extension
pattern); endpoints reach it with :func:`receiver`. Reading a request is one
function, so every endpoint refuses oversized bodies (before reading them)
and wrong content types the same way, and every refusal is counted and logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from flask import Flask, Response, current_app, jsonify, request

from connector.config import Config, HubspotCrm, Secrets
from connector.connect import field_specs
from connector.errors import ConnectorError
from connector.logs import log
from connector.store.cursors import ACCOUNT_CURSOR
from connector.store.inbox import Event, Inbox
from connector.store.state import Store
from connector.sync.lease import lock_state
from connector.sync.metrics import Metrics, account_state
from webhooks.signing import Rejected

EXTENSION = "spm"
ACCOUNT_KEPT_S = 60.0


@dataclass
class Receiver:
    config: Config
    secrets: Secrets
    store: Store
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    inbox: Inbox = field(init=False)
    metrics: Metrics = field(init=False)
    # Our own HubSpot properties: a change to one of them by our app is our write coming back.
    our_hubspot_properties: frozenset[str] = field(init=False)
    # Set whenever events are stored: an in-process worker wakes at once.
    wake: threading.Event = field(default_factory=threading.Event)
    # The account id as last read, and when (monotonic): see account().
    _account: tuple[str | None, float] = field(default=(None, 0.0), init=False, repr=False)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.store)
        self.metrics = Metrics(
            self.inbox.depth, lambda: lock_state(self.store), lambda: account_state(self.store)
        )
        self.our_hubspot_properties = frozenset(spec.hubspot for spec in field_specs(self.config))

    def store_events(self, source: str, events: Sequence[Event]) -> int:
        """Commit the events; only then may the endpoint acknowledge them."""
        try:
            fresh = self.inbox.add(events, self.clock())
        except ConnectorError as error:
            log("store_failed", source=source, events=len(events), error=str(error))
            raise Rejected(
                503, "store_unavailable", "the store could not take the events"
            ) from None
        self.metrics.received.labels(source).inc(fresh)
        if len(events) > fresh:
            self.metrics.duplicates.labels(source).inc(len(events) - fresh)
        if fresh:
            self.wake.set()
        log("stored", source=source, events=len(events), new=fresh)
        return fresh

    def account(self) -> str | None:
        """The CRM account the store belongs to (None before the first sync).

        Once known it is kept for a minute: every delivery asks, and a store changes its
        account only on ``sync --rebuild``."""
        known, at = self._account
        if known is not None and time.monotonic() - at < ACCOUNT_KEPT_S:
            return known
        try:
            recorded = self.store.cursors.get(ACCOUNT_CURSOR)
        except ConnectorError as error:
            log("store_failed", error=str(error))
            raise Rejected(503, "store_unavailable", "the store cannot be read") from None
        crm = self.config.crm
        if recorded is None and isinstance(crm, HubspotCrm) and crm.portal_id is not None:
            recorded = str(crm.portal_id)
        self._account = (recorded, time.monotonic())
        return recorded

    def missing_secrets(self) -> list[str]:
        """The settings without which every delivery from the configured CRM is refused."""
        crm = self.config.crm.type.value if self.config.crm is not None else None
        if crm == "salesforce" and not self.secrets.salesforce_org_id:
            return ["SPM_SALESFORCE_ORG_ID"]
        if crm == "hubspot" and self.secrets.hubspot_client_secret is None:
            return ["SPM_HUBSPOT_CLIENT_SECRET"]
        return []

    def invalid(self, source: str, detail: str) -> None:
        """An event that fails its model: skipped, counted as ignored, and logged."""
        self.ignore(source, "invalid")
        log("invalid_event", source=source, detail=detail[:300])

    def ignore(self, source: str, reason: str, count: int = 1) -> None:
        self.metrics.ignored.labels(source, reason).inc(count)


def init_app(app: Flask, state: Receiver) -> None:
    app.extensions[EXTENSION] = state
    app.config["MAX_CONTENT_LENGTH"] = state.config.webhooks.max_body_bytes


def receiver() -> Receiver:
    state: Receiver = current_app.extensions[EXTENSION]
    return state


def read_body(content_types: Collection[str]) -> bytes:
    """The raw body, once its size and type are acceptable (413 and 415 otherwise)."""
    limit = receiver().config.webhooks.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, "too_large", f"the body is over {limit} bytes")
    mimetype = request.mimetype
    if mimetype not in content_types:
        raise Rejected(415, "content_type", f"expected {' or '.join(sorted(content_types))}")
    if request.content_length is None and "wsgi.input_terminated" in request.environ:
        # Chunked, with no length to check first: read one byte past the limit at most.
        raw: bytes = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise Rejected(413, "too_large", f"the body is over {limit} bytes")
        return raw
    return request.get_data(cache=False)


R = TypeVar("R")


def endpoint(
    source: str,
    content_types: Collection[str],
    handle: Callable[[Receiver, bytes], R],
    refuse: Callable[[Rejected], R],
) -> R:
    """One webhook request: its body read within limits, ``handle`` run on it, timed.

    ``handle`` verifies, parses and stores, raising :class:`Rejected` to refuse; a
    refusal is counted, logged and answered by ``refuse`` in the CRM's own format.
    """
    started = time.perf_counter()
    state = receiver()
    try:
        answer = handle(state, read_body(content_types))
    except Rejected as error:
        rejected(source, error, started)
        return refuse(error)
    state.metrics.ack_seconds.labels(source).observe(time.perf_counter() - started)
    return answer


def json_refusal(error: Rejected) -> tuple[Response, int]:
    return jsonify({"error": error.reason, "detail": error.detail}), error.status


def now_s() -> float:
    return receiver().clock().timestamp()


def rejected(source: str, error: Rejected, started: float) -> None:
    state = receiver()
    state.metrics.rejected.labels(source, error.reason).inc()
    state.metrics.ack_seconds.labels(source).observe(time.perf_counter() - started)
    log(
        "rejected",
        source=source,
        status=error.status,
        reason=error.reason,
        detail=error.detail,
        remote=request.remote_addr,
    )
