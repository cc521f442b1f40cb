"""Benchmark a deployment of several accounts: throughput per worker count, acknowledgement
and end-to-end latency, lost and duplicated writes, and takeover after a worker stops.

Setup: ``--accounts`` HubSpot sandboxes (one portal each) in this process, each
answering every API call after ``--latency-ms`` (100: a real portal's typical
answer), an accounts folder with one account per portal (stores on PostgreSQL, one
schema each, when it answers at 127.0.0.1:5432, else SQLite files), ``install`` and
a full ``sync`` of each, and ``spm-connector serve --accounts DIR --no-worker`` in
its own process, which every portal's webhooks are sent to.

1. Throughput: with the workers stopped, ``--changes`` deals change in every portal
   and the deliveries are stored; then 1, 2 and 4 ``worker --accounts`` processes
   start, and the time until every inbox is empty gives events applied per second.
2. Acknowledgement: signed deliveries of one event each at ``--load`` per second
   across the portals, with two workers applying them: acknowledgement p50/p99.
3. End to end: ``--rate`` deal changes per second in every portal for ``--seconds``:
   the time from the change in the CRM to our commission field changing there (p50,
   p99), changes never written (lost), and fields written with a value they already
   held (duplicated).
4. Takeover: the worker holding an account is stopped (SIGSTOP, as a paused or cut-off
   machine: its process is not seen to die); the time until another worker applies
   that account's next change.

Usage: python bench/scale_bench.py [--accounts 4] [--deals 400] [--latency-ms 100]
                                   [--changes 300] [--load 500] [--rate 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhook_bench import config_for, percentile, send_steadily  # noqa: E402

from connector.cli import cli  # noqa: E402
from connector.store.inbox import Inbox  # noqa: E402
from connector.store.state import Store  # noqa: E402
from crm_sandbox.hubspot import HubSpotSandbox  # noqa: E402

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class Portal:
    """One account: its sandbox, folder and store, and when our commission field changed."""

    def __init__(self, name: str, sandbox: HubSpotSandbox, folder: Path, store: str) -> None:
        self.name = name
        self.sandbox = sandbox
        self.folder = folder
        self.store = store
        self.changed_at: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.fields_changed = 0
        self.limited = 0  # 429 answers before the call log was last reset
        self.lock = threading.Lock()
        sandbox.portal.listeners.append(self._heard)

    def _heard(self, events: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        with self.lock:
            for event in events:
                ours = event.get("changeSource") == "INTEGRATION"
                if ours and str(event.get("propertyName", "")).startswith("spm_"):
                    self.fields_changed += 1
                if ours and event.get("propertyName") == "spm_commission":
                    deal = str(event["objectId"])
                    if deal in self.changed_at and deal not in self.arrived:
                        self.arrived[deal] = now

    def change(self, deal: dict[str, Any], rng: random.Random) -> None:
        with self.lock:
            self.changed_at[deal["id"]] = time.perf_counter()
            self.arrived.pop(deal["id"], None)
        self.sandbox.set_amount(deal["id"], Decimal(deal["amount"]) + rng.randint(1, 900))

    def won(self) -> list[dict[str, Any]]:
        return [
            d
            for d in self.sandbox.deals()
            if d["dealstage"] == "closedwon" and d.get("spm_commission")
        ]

    def queued(self) -> int:
        with Store.open(self.store) as store:
            return Inbox(store).depth().queued

    def call_kinds(self) -> Counter[str]:
        return Counter(c.kind for c in self.sandbox.calls.calls())

    def fields_written(self) -> int:
        return sum(
            len(names)
            for c in self.sandbox.calls.calls()
            if c.kind == "deal_batch_update"
            for names in (c.fields or {}).values()
        )


def postgres_database() -> str | None:
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"spm_scale_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
    except Exception:
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def write_account(folder: Path, sandbox: HubSpotSandbox, store: str) -> None:
    """The account's folder: webhook_bench's config with the portal id, and its ``.env``."""
    folder.mkdir(parents=True)
    path = config_for(sandbox, folder, store)
    config = yaml.safe_load(path.read_text())
    config["crm"]["portal_id"] = sandbox.portal.portal_id
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = sandbox.settings()["env"]
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}


def start_workers(root: Path, count: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes; returns once the first has started working (the time a
    process takes to start is not the workers' throughput)."""
    paths = [logs / f"worker-{count}-{n}-{time.time():.0f}.log" for n in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "worker", "--accounts", str(root)],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=path.open("wb"),
        )
        for path in paths
    ]
    while not any("worker_started" in path.read_text() for path in paths):
        if all(process.poll() is not None for process in processes):
            raise SystemExit(f"the workers exited: see {paths[0]}")
        time.sleep(0.01)
    return processes


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def start_receiver(root: Path, processes: int) -> tuple[subprocess.Popen[str], str]:
    """``serve --accounts --no-worker`` (0), or gunicorn with that many processes."""
    if processes:
        port = free_port()
        factory = f"webhooks.deployment:create_deployment_app({str(root)!r})"
        command = [sys.executable, "-m", "gunicorn", "-w", str(processes), "--threads", "4",
                   "-b", f"127.0.0.1:{port}", factory]  # fmt: skip
        marker = "Booting worker"
    else:
        command = [sys.executable, "-m", "connector.cli", "serve", "--accounts", str(root),
                   "--port", "0", "--no-worker"]  # fmt: skip
        marker = "receiving webhooks on "
    process = subprocess.Popen(
        command, cwd=ROOT, env=clean_env(), stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    base = ""
    for line in process.stderr:
        if marker in line:
            base = f"http://127.0.0.1:{port}" if processes else line.split(marker, 1)[1].strip()
            break
    if not base:
        raise SystemExit("the receiver did not start")
    threading.Thread(target=lambda: [None for _ in process.stderr or []], daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            healthz(base)
            break
        except OSError:
            time.sleep(0.1)
    return process, base


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def drained(portals: list[Portal], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while any(p.queued() for p in portals):
        if time.monotonic() > deadline:
            raise RuntimeError("the inboxes did not drain")
        time.sleep(0.1)


def healthz(base: str) -> dict[str, Any]:
    with _OPENER.open(f"{base}/healthz", timeout=10) as reply:
        answer: dict[str, Any] = json.load(reply)
    return answer


def deliveries(
    portals: list[Portal], count: int, first_id: int, rng: random.Random
) -> list[list[dict[str, Any]]]:
    """``count`` HubSpot deliveries of one property change each, across the portals."""
    now_ms = int(time.time() * 1000)
    batches = []
    for index in range(count):
        portal = portals[index % len(portals)]
        deal = rng.choice(portal.won())
        batches.append(
            [
                {
                    "eventId": first_id + index,
                    "subscriptionId": 2101002,
                    "portalId": portal.sandbox.portal.portal_id,
                    "appId": portal.sandbox.portal.app_id,
                    "occurredAt": now_ms,
                    "subscriptionType": "deal.propertyChange",
                    "attemptNumber": 0,
                    "objectId": int(deal["id"]),
                    "propertyName": "description",
                    "propertyValue": f"note {index}",
                    "changeSource": "CRM_UI",
                }
            ]
        )
    return batches


def acknowledge(base: str, batches: list[list[dict[str, Any]]], load: float, what: str) -> None:
    """Offer ``batches`` at ``load`` per second from two sender processes (this one is busy
    answering as the CRMs), each half the load; print the acknowledgement latency."""
    secret = "sandbox-client-secret"  # every sandbox's app signs with it
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(time.sleep, (0, 0))  # started before the clock runs
        started = time.perf_counter()
        # send_steadily paces batches of 100 events; one event each: load * 100.
        halves = [
            pool.apply_async(
                send_steadily, (f"{base}/webhooks/hubspot", secret, batches[n::2], load * 50, 16)
            )
            for n in range(2)
        ]
        latencies = [x for half in halves for x in half.get()]
        took = time.perf_counter() - started
    print(
        f"   {what}: {len(batches):,} in {took:.1f} s = {len(batches) / took:,.0f}/s; "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def draw(deals: list[dict[str, Any]], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` deals, each once while there are enough (a busy account repeats some)."""
    return rng.sample(deals, count) if count <= len(deals) else rng.choices(deals, k=count)


def end_to_end(
    portals: list[Portal], rates: dict[str, float], seconds: float, rng: random.Random
) -> dict[str, float]:
    """Change won deals at ``rates`` (per account, per second) for ``seconds``; print the
    latency from each change to our commission field changing, what was lost and written
    twice; return each account's p99."""
    for portal in portals:
        portal.limited += len(portal.sandbox.calls.calls("rate_limited"))
        portal.sandbox.calls.reset()
        with portal.lock:
            portal.changed_at.clear()
            portal.arrived.clear()
            portal.fields_changed = 0
    schedule: list[tuple[float, Portal]] = []
    for portal in portals:
        count = int(rates[portal.name] * seconds)
        schedule += [(n / rates[portal.name], portal) for n in range(count)]
    picks = {p.name: iter(draw(p.won(), sum(1 for _, q in schedule if q is p), rng))
             for p in portals}  # fmt: skip
    start = time.perf_counter()
    for due, portal in sorted(schedule, key=lambda item: item[0]):
        time.sleep(max(0.0, start + due - time.perf_counter()))
        portal.change(next(picks[portal.name]), rng)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and any(
        len(p.arrived) < len(p.changed_at) for p in portals
    ):
        time.sleep(0.05)
    for portal in portals:
        portal.sandbox.wait_for_webhooks(30)
    drained(portals)
    e2e = [p.arrived[d] - p.changed_at[d] for p in portals for d in p.arrived]
    changes = sum(len(p.changed_at) for p in portals)
    lost = changes - sum(len(p.arrived) for p in portals)
    sent = sum(p.fields_written() for p in portals)
    changed = sum(p.fields_changed for p in portals)
    print(
        f"   changes {changes}; latency change -> field p50 {percentile(e2e, 0.5) * 1000:.0f}"
        f" ms, p99 {percentile(e2e, 0.99) * 1000:.0f} ms, max "
        f"{max(e2e, default=0) * 1000:.0f} ms; lost {lost}; fields written {sent}, "
        f"duplicated (a value already there) {sent - changed}"
    )
    kinds = sum((p.call_kinds() for p in portals), Counter[str]())
    shown = ", ".join(f"{kind} {count}" for kind, count in kinds.most_common())
    print(f"   CRM calls: {sum(kinds.values())} ({shown})")
    per_account = {
        p.name: percentile([p.arrived[d] - p.changed_at[d] for d in p.arrived], 0.99)
        for p in portals
    }
    print(
        "   p99 by account: "
        + ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in per_account.items())
    )
    return per_account


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--deals", type=int, default=800)
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument(
        "--rate-limit", type=int, default=100, help="calls per portal per ten seconds (0: none)"
    )
    parser.add_argument("--changes", type=int, default=300, help="per account, for phase 1")
    parser.add_argument("--workers", default="1,2,4", help="worker counts for phase 1")
    parser.add_argument("--load", type=float, default=500.0, help="deliveries/s, phase 2")
    parser.add_argument("--ack-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="changes/s per account")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of phase 3")
    parser.add_argument("--e2e-workers", type=int, default=4, help="workers for phase 3")
    parser.add_argument(
        "--receivers", type=int, default=0,
        help="gunicorn processes for the receiver (0: `serve --no-worker`, one process)",
    )  # fmt: skip
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="spm-scale-bench-"))
    root = directory / "accounts"
    database = postgres_database()
    rng = random.Random(3)
    portals: list[Portal] = []
    for n in range(args.accounts):
        name = f"account{n + 1}"
        sandbox = HubSpotSandbox(
            seed=20 + n, reps=args.reps, deals=args.deals, portal_id=50_000_001 + n,
            webhook_retry_base_s=0.2,
        ).start()  # fmt: skip
        store = f"{database}?schema={name}" if database else f"sqlite:///{directory / name}.db"
        write_account(root / name, sandbox, store)
        portals.append(Portal(name, sandbox, root / name, store))
    runner = CliRunner()
    for portal in portals:
        env = {**clean_env(), **portal.sandbox.settings()["env"]}
        for command in (["install"], ["sync"]):
            config = str(portal.folder / "spm.yaml")
            result = runner.invoke(cli, ["--config", config, *command], env=env)
            if result.exit_code != 0:
                raise SystemExit(result.output)
    serve, base = start_receiver(root, args.receivers)
    for portal in portals:
        portal.sandbox.webhooks.url = f"{base}/webhooks/hubspot"
        portal.sandbox.faults.update(
            {"latency_ms": args.latency_ms, "rate_limit": args.rate_limit or None}
        )
    kind = "PostgreSQL, one schema per account" if database else "SQLite, one file per account"
    print(
        f"{args.accounts} accounts ({args.reps} reps, {args.deals} deals each), every CRM call "
        f"answered after {args.latency_ms} ms, {args.rate_limit or 'no'} calls per ten seconds "
        f"per portal; stores: {kind}; receiver at {base}"
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        # -- 1: throughput by worker count -------------------------------------------------
        print(f"\n1. throughput: {args.changes} deal changes per account stored, then drained")
        for count in (int(c) for c in args.workers.split(",")):
            for portal in portals:
                for deal in rng.sample(portal.won(), min(args.changes, len(portal.won()))):
                    portal.change(deal, rng)
            for portal in portals:
                portal.sandbox.wait_for_webhooks(120)
            events = sum(p.queued() for p in portals)
            workers = start_workers(root, count, directory)
            started = time.perf_counter()
            drained(portals)
            took = time.perf_counter() - started
            stop(workers)
            print(
                f"   {count} worker(s): {events:,} events in {took:.1f} s = "
                f"{events / took:,.0f} events/s"
            )

        # -- 2: acknowledgement latency ----------------------------------------------------
        print(f"\n2. acknowledgement at {args.load:,.0f} deliveries/s offered (one event each)")
        count = int(args.load * args.ack_seconds)
        acknowledge(base, deliveries(portals, count, 90_000_000, rng), args.load, "receivers alone")
        drain = start_workers(root, 1, directory)
        drained(portals)
        stop(drain)
        workers = start_workers(root, 2, directory)
        acknowledge(
            base, deliveries(portals, count, 95_000_000, rng), args.load, "2 workers applying"
        )
        drained(portals)

        # -- 3: end to end -----------------------------------------------------------------
        stop(workers)
        workers = start_workers(root, args.e2e_workers, directory)
        rates = {p.name: args.rate for p in portals}
        print(
            f"\n3. end to end at {args.rate:g} changes/s in each of {len(portals)} accounts "
            f"for {args.seconds:g} s, {args.e2e_workers} workers"
        )
        even = end_to_end(portals, rates, args.seconds, rng)
        busy = portals[0].name
        rates[busy] = args.rate * 5
        print(
            f"\n   again, with {busy} at {rates[busy]:g} changes/s beside the others at "
            f"{args.rate:g}/s (a busy account beside quiet ones)"
        )
        skewed = end_to_end(portals, rates, args.seconds, rng)
        quiet = [p.name for p in portals if p.name != busy]
        print(
            "   the quiet accounts' p99: "
            + ", ".join(f"{n} {even[n] * 1000:.0f} -> {skewed[n] * 1000:.0f} ms" for n in quiet)
        )

        # -- 4: takeover ---------------------------------------------------------------------
        target = portals[0]
        holder_pid = None
        deadline = time.monotonic() + (60 if len(workers) > 1 else 0)  # needs another
        while holder_pid is None and time.monotonic() < deadline:
            target.change(rng.choice(target.won()), rng)
            for _ in range(40):
                lock = healthz(base)["accounts"][target.name].get("lock")
                if lock:
                    pid = int(lock["holder"].split(":")[1])
                    if any(w.pid == pid for w in workers):
                        holder_pid = pid
                        break
                time.sleep(0.01)
        if holder_pid is None:
            print("\n4. takeover: not measured (it needs two workers, one seen holding)")
        else:
            os.kill(holder_pid, signal.SIGSTOP)
            stopped = time.perf_counter()
            deal = rng.choice(target.won())
            target.change(deal, rng)
            while deal["id"] not in target.arrived and time.perf_counter() - stopped < 120:
                time.sleep(0.05)
            took = target.arrived.get(deal["id"], float("nan")) - stopped
            os.kill(holder_pid, signal.SIGCONT)
            drained(portals)
            print(
                "\n4. takeover: the worker holding an account stopped (SIGSTOP); another applied "
                f"its next change {took:.1f} s later (the lease is 24 s, renewed every 8 s)"
            )
        # -- nothing owed ------------------------------------------------------------------
        stop(workers)
        owed = 0
        for portal in portals:
            env = {**clean_env(), **portal.sandbox.settings()["env"]}
            config = str(portal.folder / "spm.yaml")
            result = runner.invoke(cli, ["--config", config, "sync", "--dry-run"], env=env)
            owed += len([line for line in result.stdout.splitlines() if "->" in line])
        print(f"\nafterwards, dry-run syncs of every account plan {owed} writes (0: none lost)")
        limited = sum(p.limited + len(p.sandbox.calls.calls("rate_limited")) for p in portals)
        print(
            f"429 answers from the portals over the whole run: {limited} (each portal allows "
            f"{args.rate_limit} calls per ten seconds, shared by every process)"
        )
    finally:
        stop(workers)
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        for portal in portals:
            portal.sandbox.stop()
        if database:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                name = database.rsplit("/", 1)[1]
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
