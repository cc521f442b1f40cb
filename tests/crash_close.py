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
    original = books.PayCycle._log

    def log(
        self: books.PayCycle, connection: Any, at: Any, actor: str, action: str, *rest: Any
    ) -> None:
        original(self, connection, at, actor, action, *rest)
        if action == "close":
            os._exit(137)

    books.PayCycle._log = log  # type: ignore[method-assign,assignment]
    from connector.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
