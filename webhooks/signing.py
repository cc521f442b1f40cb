"""Is this request from who it says? Checked on the raw bytes, before any parsing.

Every comparison is constant-time, and every check has a timestamp window so a
captured request cannot be replayed later. A failure raises :class:`Rejected`
with a reason safe to log: it never contains the signature, the secret or
the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from hubspot.utils.signature import Signature

TOLERANCE_S = 300  # HubSpot's own window, and Stripe's default
# A Unix time in seconds or milliseconds: plain digits, short enough to be a real moment
# (a 400-digit "timestamp" is refused here rather than overflow a float later).
_TIMESTAMP = re.compile(r"[0-9]{1,15}")

# HubSpot decodes exactly these escapes in the URI before signing (v3).
_HUBSPOT_URI_DECODES = {
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


class Rejected(Exception):
    """A request refused: ``status`` to answer, ``reason`` to count and log."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason


def _within_window(timestamp_s: float, now_s: float) -> bool:
    return abs(now_s - timestamp_s) <= TOLERANCE_S


def verify_hubspot(
    *,
    secret: str | None,
    signature: str | None,
    timestamp: str | None,
    method: str,
    uri: str,
    body: bytes,
    now_s: float,
) -> None:
    """``X-HubSpot-Signature-v3``: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    if not secret:
        raise Rejected(401, "not_configured", "SPM_HUBSPOT_CLIENT_SECRET is not set")
    if not signature or not timestamp:
        raise Rejected(401, "missing_signature", "X-HubSpot-Signature-v3 and its timestamp")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Rejected(
            401, "bad_timestamp", "X-HubSpot-Request-Timestamp is not a time in milliseconds"
        )
    stamp_ms = int(timestamp)
    if not _within_window(stamp_ms / 1000, now_s):
        raise Rejected(401, "stale_timestamp", "the request is more than 5 minutes old")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "bad_encoding", "the body is not UTF-8") from None
    expected = Signature.get_signature(
        secret,
        text,
        "v3",
        http_uri=hubspot_signing_uri(uri),
        http_method=method,
        timestamp=timestamp,
    )
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Rejected(401, "bad_signature", "X-HubSpot-Signature-v3 does not match")


def hubspot_signing_uri(uri: str) -> str:
    for escaped, plain in _HUBSPOT_URI_DECODES.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    return uri


SIGNATURE_HEADER = "X-SPM-Signature"


def verify_event_body(*, secret: str | None, header: str | None, body: bytes, now_s: float) -> int:
    """Stripe's scheme: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``; returns ``t``.

    Several ``v1`` values may be given (while a secret is rotated); one must match.
    """
    if not secret:
        raise Rejected(401, "not_configured", "SPM_WEBHOOK_SECRET is not set")
    if not header:
        raise Rejected(401, "missing_signature", f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if not _TIMESTAMP.fullmatch(value):
                raise Rejected(401, "bad_timestamp", "t= is not a time in seconds")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise Rejected(401, "missing_signature", f"{SIGNATURE_HEADER} needs t= and v1=")
    if not _within_window(timestamp, now_s):
        raise Rejected(401, "stale_timestamp", "the request is more than 5 minutes old")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    wanted = expected.hexdigest().encode()
    # Compare against every candidate, without stopping early.
    matched = [hmac.compare_digest(wanted, c.encode()) for c in candidates]
    if not any(matched):
        raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} does not match")
    return timestamp
