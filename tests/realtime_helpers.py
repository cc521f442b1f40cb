"""The receiver on a real socket with its worker thread, as `spm-connector serve` runs them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from connector.commands.realtime import build_worker
from connector.config import load_config, store_url
from connector.store.inbox import Inbox
from connector.store.state import Store
from connector.sync.worker import Worker
from webhooks.app import create_app
from webhooks.receiver import EXTENSION, Receiver


class LiveServer:
    """Listens at once (so a sandbox can be told its URL), serves once given an app."""

    def __init__(self) -> None:
        self._app: Any = None
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not yet"]
        return self._app(environ, start_response)

    def stop_serving(self) -> None:
        self.server.shutdown()
        self._thread.join(timeout=10)
        self.server.server_close()


class LiveReceiver(LiveServer):
    """The receiver of one account, with its worker in a thread."""

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.store: Store | None = None
        self.state: Receiver | None = None
        self.worker: Worker | None = None
        self._worker_thread: threading.Thread | None = None

    def attach(
        self, config_path: Path, env: Mapping[str, str], as_of: date, *, worker: bool = True
    ) -> LiveReceiver:
        config = load_config(config_path)
        self.store = Store.open(store_url(config, env))
        app = create_app(config, environ=env, store=self.store)
        self.state = app.extensions[EXTENSION]
        if worker:
            self.worker = build_worker(
                config, self.store, self.state.metrics, environ=env, as_of=as_of
            )
            self._worker_thread = threading.Thread(
                target=self.worker.run, args=(self.stop, self.state.wake), daemon=True
            )
            self._worker_thread.start()
        self._app = app
        return self

    @property
    def inbox(self) -> Inbox:
        assert self.store is not None
        return Inbox(self.store)

    def settle(self, deliveries: Iterable[Callable[[float], bool]], timeout: float = 20.0) -> None:
        """Until the CRM has delivered everything and the inbox is empty, twice in a row."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            assert time.monotonic() < deadline, f"not settled: {self.inbox.counts()}"
            idle = all(wait(1.0) for wait in deliveries)
            if idle and self.inbox.depth().queued == 0:
                quiet += 1
            else:
                quiet = 0
            time.sleep(0.1)

    def metric(self, name: str, **labels: str) -> float:
        assert self.state is not None
        value = self.state.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    def close(self) -> None:
        self.stop.set()
        if self.state is not None:
            self.state.wake.set()
        if self._worker_thread is not None:
            self._worker_thread.join(timeout=30)
        self.stop_serving()
        if self.store is not None:
            self.store.close()


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)
