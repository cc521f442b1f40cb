"""Run `spm-connector worker …` and die by SIGKILL at a point of applying an event.

Usage: python -m tests.crash_worker POINT ARGS…   POINT: claimed | deal writes | applied

- claimed: the events are leased, nothing is applied yet;
- deal writes: the deals' values are written to the CRM, the reps' are not;
- applied: everything is written, the events are not marked done.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from connector.sync import engine, worker


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    if point == "claimed":
        original_apply = worker.Worker._apply

        def apply(self: worker.Worker, *a: Any, **kw: Any) -> None:
            die()
            original_apply(self, *a, **kw)

        worker.Worker._apply = apply  # type: ignore[method-assign]
    elif point == "deal writes":
        original_init = engine.SyncEngine.__init__

        def init(self: engine.SyncEngine, *a: Any, **kw: Any) -> None:
            original_init(self, *a, **kw)
            inner = self.progress

            def progress(name: str, count: int) -> None:
                inner(name, count)
                if name == point:
                    die()

            self.progress = progress

        engine.SyncEngine.__init__ = init  # type: ignore[method-assign]
    elif point == "applied":
        original_process = engine.SyncEngine.process

        def process(self: engine.SyncEngine, *a: Any, **kw: Any) -> Any:
            original_process(self, *a, **kw)
            die()

        engine.SyncEngine.process = process  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point!r}")
    from connector.cli import main as cli

    cli(args)


if __name__ == "__main__":
    main()
