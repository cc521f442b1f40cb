"""Run `spm-connector …` and die, as SIGKILL would, at one point of the coaching steps.

Usage: python -m tests.crash_coaching POINT ARGS…  (exits 137 at POINT)

- ``decided``: the tasks are kept in the store, before the statements commit and
  before any is opened in the CRM;
- ``created``: the CRM took a task's create, before its id was kept;
- ``noted``: the CRM took a note on a task, before the store knew.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from connector.adapters.hubspot.tasks import HubSpotTasks
from connector.adapters.salesforce.tasks import SalesforceTasks
from connector.store.coaching import CoachingTasks


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    if point == "decided":
        opened = CoachingTasks.open

        def open_then_die(self: CoachingTasks, tasks: Any) -> int:
            new = opened(self, tasks)
            if new:
                os._exit(137)
            return new

        CoachingTasks.open = open_then_die  # type: ignore[method-assign]
    for board in (SalesforceTasks, HubSpotTasks):
        if point == "created":
            board.create = _dies_after(board.create)  # type: ignore[method-assign]
        elif point == "noted":
            board.update_body = _dies_after(board.update_body)  # type: ignore[method-assign]
    from connector.cli import main as cli

    cli(args)


def _dies_after(method: Any) -> Any:
    def call_then_die(self: Any, *args: Any) -> Any:
        method(self, *args)
        os._exit(137)

    return call_then_die


if __name__ == "__main__":
    main()
