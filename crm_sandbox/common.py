"""What both emulators share: the call log, fault injection and the server thread."""

from __future__ import annotations

import hmac
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


@dataclass(frozen=True)
class LoggedCall:
    method: str
    path: str
    kind: str  # e.g. "query_page", "composite_write", "deal_search", "batch_update"
    status: int
    records: int = 0  # records read or written by this call, where that means something
    # Writes: record id → the properties it carried (for tests counting writes per field).
    fields: dict[str, list[str]] | None = None


class CallLog:
    """A thread-safe request log with per-kind counters, for tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[LoggedCall] = []

    def record(self, call: LoggedCall) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self, kind: str | None = None) -> list[LoggedCall]:
        with self._lock:
            return [c for c in self._calls if kind is None or c.kind == kind]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(Counter(c.kind for c in self._calls).items()))

    def total(self) -> int:
        with self._lock:
            return len(self._calls)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": len(self._calls),
                "counts": dict(sorted(Counter(c.kind for c in self._calls).items())),
                "calls": [c.__dict__ for c in self._calls[-1000:]],
            }


@dataclass
class Faults:
    """Failures to inject, settable from Python and from each emulator's admin endpoint.

    ``rate_limit``: requests allowed per ``rate_window_s`` (HubSpot's 10-second
    window); ``daily_limit``: API calls allowed in total (Salesforce's daily
    budget); ``error_rate``: share of calls answered 503, drawn from a seeded
    generator so runs repeat; ``locked_ids``: records whose writes fail with
    ``UNABLE_TO_LOCK_ROW`` (Salesforce) or an error in a 207 (HubSpot), each
    for ``lock_failures`` attempts; ``latency_ms``: delay added to every call.
    ``search_rate_limit``: search calls allowed per ``search_window_s``, counted
    apart from the other calls (HubSpot limits its search endpoints per second).
    ``locked_writes``: the next this many batch writes are answered 423 Locked as a
    whole (HubSpot's answer to concurrent writes on one record); Salesforce reports
    its locks per record instead (``locked_ids``). ``busy_requests``: the next this many
    Salesforce calls are refused for the org's concurrent long-running request limit
    (``REQUEST_LIMIT_EXCEEDED``, ``ConcurrentPerOrgLongTxn``), which passes in seconds.
    """

    rate_limit: int | None = None
    rate_window_s: float = 10.0
    daily_limit: int | None = None
    error_rate: float = 0.0
    locked_ids: set[str] = field(default_factory=set)
    lock_failures: int = 1
    latency_ms: int = 0
    seed: int = 0
    search_rate_limit: int | None = None
    search_window_s: float = 1.0
    locked_writes: int = 0
    busy_requests: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _window: list[float] = field(init=False, repr=False, default_factory=list)
    _search_window: list[float] = field(init=False, repr=False, default_factory=list)
    _lock_hits: Counter[str] = field(init=False, repr=False, default_factory=Counter)
    _guard: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def update(self, settings: dict[str, Any]) -> None:
        """Apply settings from the admin endpoint: unknown names and wrong types are refused."""
        unknown = set(settings) - set(_FAULT_TYPES)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        for name, value in settings.items():
            _check_fault(name, value)
        with self._guard:
            for name, value in settings.items():
                if name == "locked_ids":
                    value = set(value)
                setattr(self, name, value)
            if "seed" in settings:
                self._rng = random.Random(self.seed)
            if "locked_ids" in settings:
                self._lock_hits.clear()

    def delay(self) -> None:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def should_fail(self) -> bool:
        with self._guard:
            return self.error_rate > 0 and self._rng.random() < self.error_rate

    def rate_limited(self, now: float | None = None) -> tuple[bool, int, float]:
        """Count this call in the rolling window: (over the limit?, remaining, seconds to wait)."""
        return self._count(self._window, self.rate_limit, self.rate_window_s, now)

    def search_rate_limited(self, now: float | None = None) -> tuple[bool, int, float]:
        """As :meth:`rate_limited`, in the separate window for search calls."""
        return self._count(self._search_window, self.search_rate_limit, self.search_window_s, now)

    def _count(
        self, window: list[float], limit: int | None, window_s: float, now: float | None
    ) -> tuple[bool, int, float]:
        if limit is None:
            return False, -1, 0.0
        now = time.monotonic() if now is None else now
        with self._guard:
            window[:] = [t for t in window if now - t < window_s]
            if len(window) >= limit:
                wait = window_s - (now - window[0]) if window else window_s
                return True, 0, max(wait, 0.0)
            window.append(now)
            return False, limit - len(window), 0.0

    def write_locked(self) -> bool:
        """True when this batch write should be answered 423 Locked (counts one down)."""
        return self._take("locked_writes")

    def org_busy(self) -> bool:
        """True when this call should meet the concurrent request limit (counts one down)."""
        return self._take("busy_requests")

    def _take(self, name: str) -> bool:
        with self._guard:
            left = int(getattr(self, name))
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    def lock_fails(self, record_id: str) -> bool:
        """True when a write to this record should fail as locked this time."""
        with self._guard:
            if record_id not in self.locked_ids:
                return False
            if self._lock_hits[record_id] >= self.lock_failures:
                return False
            self._lock_hits[record_id] += 1
            return True


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: the call log is the sandbox's record of requests."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServerThread:
    """A WSGI app served on loopback from a daemon thread, optionally over TLS."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, ssl_context=ssl_context, request_handler=_QuietHandler
        )
        self.host = host
        self.port = self._server.server_port
        self.scheme = "https" if ssl_context else "http"
        self._thread = threading.Thread(
            # A short poll keeps stop() (and so every test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sandbox-{self.port}",
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class LocalTLS:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""

    ca_path: Path
    context: ssl.SSLContext


def local_tls(ca_path: Path) -> LocalTLS:
    import trustme

    ca = trustme.CA(organization_name="spm-connector sandbox")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))
    return LocalTLS(ca_path=ca_path, context=context)


@contextmanager
def serving(app: Any, ssl_context: ssl.SSLContext | None = None) -> Iterator[ServerThread]:
    server = ServerThread(app, ssl_context=ssl_context).start()
    try:
        yield server
    finally:
        server.stop()


class DealMutations(Protocol):
    """What a person does to deals in the CRM; both sandboxes offer it."""

    def close_deal(self, deal_id: str, *, won: bool = True, on: date | None = None) -> None: ...
    def set_amount(self, deal_id: str, amount: Decimal) -> None: ...
    def set_owner(self, deal_id: str, owner_id: str) -> None: ...
    def reverse_deal(self, deal_id: str) -> None: ...
    def create_deal(
        self,
        owner_id: str,
        amount: Decimal,
        close_date: date,
        *,
        won: bool | None = True,
        name: str = "Sandbox deal",
        type: str = "New Business",
    ) -> str: ...


def apply_mutation(
    target: DealMutations,
    change: dict[str, Any],
    *,
    remove: tuple[str, Any],
) -> dict[str, Any]:
    """An admin-endpoint mutation, ``{"action": "close_deal", "id": "…", …}``, applied.

    ``remove`` names the CRM's own word for taking a deal away (``delete_deal``
    on Salesforce, ``archive_deal`` on HubSpot) and the method that does it.
    Bad requests raise ValueError (or KeyError for a missing field).
    """
    action = change.get("action")
    deal_id = str(change.get("id", ""))
    remove_action, remove_deal = remove
    if action == "close_deal":
        on = change.get("on")
        target.close_deal(
            deal_id, won=bool(change.get("won", True)), on=date.fromisoformat(on) if on else None
        )
    elif action == "set_amount":
        target.set_amount(deal_id, Decimal(str(change["amount"])))
    elif action == "set_owner":
        target.set_owner(deal_id, str(change["owner_id"]))
    elif action == "reverse_deal":
        target.reverse_deal(deal_id)
    elif action == remove_action:
        remove_deal(deal_id)
    elif action == "create_deal":
        won = change.get("won", True)
        deal_id = target.create_deal(
            str(change["owner_id"]),
            Decimal(str(change["amount"])),
            date.fromisoformat(str(change["close_date"])),
            won=None if won is None else bool(won),
            name=str(change.get("name", "Sandbox deal")),
        )
    else:
        raise ValueError(
            f"unknown action {action!r}: use close_deal, set_amount, set_owner, "
            f"reverse_deal, {remove_action} or create_deal"
        )
    return {"id": deal_id, "done": action}


# Each fault setting: (kind, may be null). Checked before any is applied, so a bad
# value is one 400 answer rather than every later call failing.
_FAULT_TYPES: dict[str, tuple[str, bool]] = {
    "rate_limit": ("count", True),
    "rate_window_s": ("seconds", False),
    "daily_limit": ("count", True),
    "error_rate": ("share", False),
    "locked_ids": ("ids", False),
    "lock_failures": ("count", False),
    "latency_ms": ("count", False),
    "seed": ("count", False),
    "search_rate_limit": ("count", True),
    "search_window_s": ("seconds", False),
    "locked_writes": ("count", False),
    "busy_requests": ("count", False),
}


def _check_fault(name: str, value: Any) -> None:
    kind, nullable = _FAULT_TYPES[name]
    if value is None:
        if not nullable:
            raise ValueError(f"{name}: must not be null")
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "count" and not (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    ):
        raise ValueError(f"{name}: must be a whole number, 0 or more, not {value!r}")
    if kind == "seconds" and not (number and 0 < value <= 3600):
        raise ValueError(f"{name}: must be a number of seconds above 0, not {value!r}")
    if kind == "share" and not (number and 0 <= value <= 1):
        raise ValueError(f"{name}: must be a share between 0 and 1, not {value!r}")
    if kind == "ids" and not (
        isinstance(value, list | set | tuple) and all(isinstance(v, str) for v in value)
    ):
        raise ValueError(f"{name}: must be a list of record ids")


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
ADMIN_TOKEN_HEADER = "X-Sandbox-Token"


ADMIN_HEADERS = ("Host", "Origin", "Content-Type", "X-Sandbox-Token")


def admin_refusal(
    remote_addr: str | None,
    headers: Mapping[str, str | None],
    method: str,
    admin_token: str,
) -> tuple[int, str] | None:
    """Why an admin call is refused (status, reason), or None when it may go ahead.

    The admin endpoint changes faults and data, so a web page open in a local
    browser must not reach it (cross-site request forgery): callers must be on
    loopback, name a loopback host, come from no foreign origin, carry the
    per-run token, and send JSON (which a plain cross-site form cannot).
    """
    if remote_addr not in ("127.0.0.1", "::1", None):
        return 403, "loopback only"
    host = (headers.get("Host") or "").strip().lower()
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if name not in _LOOPBACK_HOSTS:
        return 403, "the Host must be a loopback address"
    origin = headers.get("Origin")
    if origin is not None:
        origin_host = origin.split("://", 1)[-1].rsplit(":", 1)[0].lower()
        if origin_host not in _LOOPBACK_HOSTS:
            return 403, "cross-origin calls are refused"
    if not hmac.compare_digest(headers.get(ADMIN_TOKEN_HEADER) or "", admin_token):
        return 401, f"the admin token is missing or wrong (header {ADMIN_TOKEN_HEADER})"
    if method == "POST":
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return 415, "send application/json"
    return None
