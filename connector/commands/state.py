"""What the command group's options leave for its commands (imported at start-up: keep it light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class State:
    config_option: str | None = None
