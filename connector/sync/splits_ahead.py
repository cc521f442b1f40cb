"""A worker pass reads its deals and their splits at once, not one after the other.

A pass of the worker door reads the deals its events name, then the splits of
those that carry credit: two round trips to the CRM before anything is computed.
Which deals will owe a split read is known only once they are read (a deal won
just now carries credit; an open deal's edit does not), so the splits of every
named deal are read beside the deals, and used when they cover what is owed. A
pass on open deals alone may spend that one read for nothing; every pass that
credits a deal is a round trip shorter.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from connector.adapters.base import CrmAdapter
from connector.core.models import CrmSplit


class SplitsAhead:
    """The splits of ``deal_ids``, read in a thread of their own from the moment made."""

    def __init__(self, adapter: CrmAdapter, deal_ids: Collection[str]) -> None:
        self.deal_ids = frozenset(deal_ids)
        self._adapter = adapter
        self._splits: list[CrmSplit] | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._read, name="spm-splits-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            splits = self._adapter.read_splits(sorted(self.deal_ids))
            self._splits = list(splits) if splits is not None else None
        except Exception as error:  # raised where the splits are asked for, if they are
            self._error = error

    def covers(self, owed: Collection[str]) -> bool:
        """Whether what was read ahead is every deal owed a split read (waits for it)."""
        self._thread.join()
        return bool(owed) and set(owed) <= self.deal_ids

    def splits(self, owed: Collection[str]) -> list[CrmSplit] | None:
        """The splits of ``owed`` (None: this CRM has none); the read's error, if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._splits is None:
            return None
        wanted = set(owed)
        return [split for split in self._splits if split.deal_id in wanted]
