"""Run `spm-connector …` and die inside a period close's transaction, as SIGKILL would:
after the frozen statements and deals are written, before the commit.

Usage: python -m tests.crash_close ARGS…  (exits 137 at that point)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from connector.store import books


def main() -> None:
    original = books.log_event

    def log_event(connection: Any, at: Any, actor: str, action: str, *rest: Any) -> None:
        original(connection, at, actor, action, *rest)
        if action == "close":
            os._exit(137)

    books.log_event = log_event  # type: ignore[assignment]
    from connector.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
