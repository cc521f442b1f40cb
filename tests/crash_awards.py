"""Run `spm-connector …` and die, as SIGKILL would, right after awards are given: before
the statements and the rep fields of that pass are committed.

Usage: python -m tests.crash_awards ARGS…  (exits 137 once awards were stored)
"""

from __future__ import annotations

import os
import sys
from datetime import date
from typing import Any

from connector.store.awards import Awards


def main() -> None:
    original = Awards.give

    def give(self: Awards, awards: Any, on: date) -> int:
        new = original(self, awards, on)
        if new:
            os._exit(137)
        return new

    Awards.give = give  # type: ignore[method-assign]
    from connector.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
