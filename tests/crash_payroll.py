"""Run `spm-connector payroll …` and die at a stage, as SIGKILL would.

Usage: python -m tests.crash_payroll STAGE ARGS…  (exits 137 when STAGE is reached)
- rename: the file is written in full under its .partial name, not yet renamed;
- mark: the file is in place, the period not yet marked paid.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from connector.store import books


def main() -> None:
    stage, args = sys.argv[1], sys.argv[2:]
    if stage == "rename":
        os.replace = lambda *_: os._exit(137)  # type: ignore[assignment]
    else:

        def mark_paid(*_: Any, **__: Any) -> None:
            os._exit(137)

        books.PayCycle.mark_paid = mark_paid  # type: ignore[method-assign]
    from connector.cli import main as cli

    cli(args)


if __name__ == "__main__":
    main()
