"""Structured log lines: one JSON object per event, never a secret, header or body."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger("spm.webhooks")
# The CRM account a line is about, in a process serving several (connector/accounts.py).
_ACCOUNT: ContextVar[str | None] = ContextVar("spm_log_account", default=None)


def log(event: str, *, level: int = logging.INFO, **fields: object) -> None:
    account = _ACCOUNT.get()
    if account is not None:
        fields.setdefault("account", account)
    logger.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=True))


@contextmanager
def about_account(name: str) -> Iterator[None]:
    """Every line logged in this block (this thread or task) names the account."""
    token = _ACCOUNT.set(name)
    try:
        yield
    finally:
        _ACCOUNT.reset(token)
