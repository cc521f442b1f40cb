"""Each rep's personal link to their own statements: signed, expiring, one rep only.

A link carries the rep's id and its expiry date, signed with
``SPM_STATEMENT_LINK_SECRET`` (itsdangerous). It is the same all month (it expires
``link_days`` after the first day of the month it was made), so the sync writes
it into the rep's field once a month, not on every run. A link for one rep never
shows another (the rep id is inside the signature), a tampered link is refused,
and a new secret voids every link made with the old one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from connector.errors import InputError

_SALT = "spm-connector statement link"


class LinkRefused(InputError):
    """The link is not ours, was altered, or has expired: the message says which."""


@dataclass(frozen=True)
class StatementLinks:
    secret: str = field(repr=False)
    base_url: str  # the receiver's public address (webhooks.public_url)
    days: int = 45

    def fingerprint(self) -> str:
        """What the links depend on, hashed (the secret never leaves this object)."""
        text = f"{self.base_url}|{self.days}|{self.secret}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=_SALT)

    def token(self, rep_id: str, today: date) -> str:
        expires = today.replace(day=1) + timedelta(days=self.days)
        return str(self._serializer().dumps({"rep": rep_id, "until": expires.isoformat()}))

    def link(self, rep_id: str, today: date) -> str:
        return f"{self.base_url.rstrip('/')}/my/{self.token(rep_id, today)}"

    def rep_of(self, token: str, today: date) -> str:
        """The rep a link is for, or :class:`LinkRefused`."""
        try:
            payload = self._serializer().loads(token)
        except BadSignature:
            raise LinkRefused("this link is not valid (altered, or made with an old key)") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("rep"), str):
            raise LinkRefused("this link is not valid")
        until = date.fromisoformat(str(payload.get("until")))
        if today > until:
            raise LinkRefused(f"this link expired on {until}: open the newer one on your record")
        return str(payload["rep"])
