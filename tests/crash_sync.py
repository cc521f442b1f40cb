"""Run `spm-connector …` and die at a stage, as SIGKILL would: no cleanup, no finally.

Usage: python -m tests.crash_sync STAGE ARGS…  (exits 137 when STAGE is reached)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from connector.sync import engine


def main() -> None:
    stage, args = sys.argv[1], sys.argv[2:]
    original = engine.SyncEngine.__init__

    def init(self: engine.SyncEngine, *a: Any, **kw: Any) -> None:
        original(self, *a, **kw)
        inner = self.progress

        def progress(name: str, count: int) -> None:
            inner(name, count)
            if name == stage:
                os._exit(137)

        self.progress = progress

    engine.SyncEngine.__init__ = init  # type: ignore[method-assign]
    from connector.cli import main as cli

    cli(args)


if __name__ == "__main__":
    main()
