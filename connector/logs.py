"""Structured log lines: one JSON object per event, never a secret, header or body."""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("spm.webhooks")


def log(event: str, *, level: int = logging.INFO, **fields: object) -> None:
    logger.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=True))
