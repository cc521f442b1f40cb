"""``GET /healthz`` and ``GET /metrics``: what an operator or a load balancer asks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.errors import ConnectorError
from connector.store.cursors import ACCOUNT_CURSOR
from connector.sync.lease import lock_state
from webhooks.receiver import Receiver, receiver

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 while the store answers (``degraded`` when events are parked), else 503.

    ``not_ready`` (503) while a setting the CRM's deliveries are checked against is
    missing: every delivery would be refused, so a load balancer should not route here.
    """
    body, status = health(receiver())
    return jsonify(body), status


def health(state: Receiver) -> tuple[dict[str, object], int]:
    """What ``/healthz`` says of one account's receiver, and its status code."""
    missing = state.missing_secrets()
    if missing:
        return {
            "status": "not_ready",
            "missing": missing,
            "detail": f"set {' and '.join(missing)}: until then every delivery is refused",
        }, 503
    try:
        depth = state.inbox.depth()
        parked = state.inbox.parked(limit=10)
        last = state.store.runs.recent(limit=1, kind="sync")
        held = lock_state(state.store)
        account = state.store.cursors.get(ACCOUNT_CURSOR)
        paused = state.store.budgets.paused_until(account) if account else None
    except ConnectorError as error:
        return {"status": "down", "store": str(error)}, 503
    oldest = (
        round(max(0.0, time.time() - depth.oldest_received_ms / 1000), 3)
        if depth.oldest_received_ms is not None
        else None
    )
    body: dict[str, object] = {
        "status": "degraded" if depth.parked else "ok",
        "store": "ok",
        "inbox": {"waiting": depth.queued, "oldest_age_s": oldest, "parked": depth.parked},
        "parked": [
            {
                "source": p.source,
                "event_id": p.event_id,
                "record": p.record,
                "record_id": p.record_id,
                "attempts": p.attempts,
                "error": p.error,
            }
            for p in parked
        ],
        "last_sync": None,
        # Who holds the sync lock (a sync or a worker pass), since when, until when.
        "lock": None
        if held is None
        else {
            "holder": held.holder,
            "since": held.acquired_at.isoformat(),
            "expires_at": held.expires_at.isoformat() if held.expires_at else None,
            "generation": held.generation,
        },
    }
    # Until when every process waits after the CRM answered 429 (HubSpot's Retry-After).
    body["api_paused_until"] = (
        datetime.fromtimestamp(paused, UTC).isoformat() if paused and paused > time.time() else None
    )
    if last:
        run = last[0]
        body["last_sync"] = {
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "status": run.status,
        }
    return body, 200


@bp.get("/metrics")
def metrics() -> Response:
    text = generate_latest(receiver().metrics.registry)
    return Response(text, content_type=CONTENT_TYPE_LATEST)
