"""Benchmark `spm-connector calc` on a synthetic org.

Generates 10,000 reps and 1,000,000 deals over 12 months (tiered plans, a
recoverable draw, SPIFFs, clawbacks, splits on 5 % of deals), then runs the
real command in a child process and prints:

- wall time of the whole `calc` (load, compute, write JSON) and deals per second;
- peak memory (the child's maximum resident set size);
- the time Python's `csv` module alone takes to read the same deals file, and
  the ratio of the two (the target is 3 or less);
- the same calc with goals on both plans (deals won, new customers, a team
  revenue goal and a team deals-won goal, goal and team bonuses; teams by
  manager, a manager per ten reps), and its ratio to the calc without them
  (the target is 1.2 or less); then with the lead-to-sale ratio too (a lead
  per ten deals).

Each calc runs --repeat times (default 2) and the best time counts.

Usage: python bench/calc_bench.py [--reps N] [--deals N] [--dir DIR] [--repeat N] [--no-goals]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

STATUSES = ["won"] * 45 + ["lost"] * 30 + ["open"] * 23 + ["cancelled"] * 2
TYPES = ["New Business", "Existing Business", "Renewal"]


GOALS = """\
    goals:
      - {{metric: deals_won, target: 6}}
      - {{metric: new_customers, target: 2}}
      - {{metric: revenue, team: true, target: {team_target}}}
      - {{metric: deals_won, team: true, target: 50}}
"""
GOAL_BONUSES = """\
      - {goal: deals_won, at: 1.0, amount: 300}
      - {goal: team_revenue, at: 1.0, amount: 500}
      - {goal: team_revenue, at: 1.0, amount: 2500, pay: manager}
"""


def write_org(directory: Path, reps: int, deals: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    rep_ids = [f"005B{index:014d}" for index in range(reps)]
    half = reps // 2
    plan_a, plan_b = rep_ids[:half], rep_ids[half:]
    for name, goals, leads in CONFIGS:
        (directory / name).write_text(_config(plan_a, plan_b, goals, leads), encoding="utf-8")
    with (directory / "reps.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "start_date", "end_date", "manager_id"])
        for index, rep_id in enumerate(rep_ids):
            start = "2026-03-01" if index % 10 == 0 else ""
            end = "2026-09-30" if index % 25 == 0 else ""
            manager = "" if index % 10 == 0 else rep_ids[index - index % 10]
            writer.writerow(
                [rep_id, f"Rep {index}", f"rep{index}@example.com", start, end, manager]
            )
    with (directory / "leads.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "owner_id", "created_date", "converted"])
        for index in range(deals // 10):
            created = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
            converted = "true" if rng.random() < 0.3 else "false"
            writer.writerow([f"00Q{index:015d}", rep_ids[rng.randrange(reps)], created, converted])
    _write_deals(directory, rng, rep_ids, deals)


# (file, goals and teams?, the lead-to-sale ratio?)
CONFIGS = (
    ("spm.yaml", False, False),
    ("spm-goals.yaml", True, False),
    ("spm-goals-leads.yaml", True, True),
)


def _config(plan_a: list[str], plan_b: list[str], goals: bool, leads: bool) -> str:
    return f"""\
currency: USD
period: month
timezone: UTC
{"teams: crm" if goals else ""}
{"kpis: {lead_to_sale: true}" if leads else ""}
plans:
  - id: ae
    start: 2026-01-01
    end: 2026-12-31
    members: [{", ".join(plan_a)}]
    quota: 150000
    ramp: [0.5, 0.75]
    commission:
      method: marginal
      tiers:
        - {{up_to: 1.0, rate: 0.10}}
        - {{up_to: 1.5, rate: 0.15}}
        - {{rate: 0.20}}
    draw: {{type: recoverable, amount: 3000, periods: 6, recovery_cap: 0.5}}
{GOALS.format(team_target=1_400_000) if goals else ""}\
    bonuses:
      - {{at: 1.0, amount: 1000}}
{GOAL_BONUSES if goals else ""}\
    spiffs:
      - {{name: new-logo, when: {{type: New Business}}, amount: 250}}
    clawback: {{window_days: 90}}
  - id: am
    start: 2026-01-01
    end: 2026-12-31
    members: [{", ".join(plan_b)}]
    quota: 200000
    commission:
      method: retroactive
      tiers:
        - {{up_to: 0.8, rate: 0.05}}
        - {{up_to: 1.2, rate: 0.08}}
        - {{rate: 0.11}}
      cap: 40000
    draw: {{type: non_recoverable, amount: 2000, periods: 3}}
{GOALS.format(team_target=1_800_000) if goals else ""}\
{"    bonuses:" + chr(10) + GOAL_BONUSES if goals else ""}\
    spiffs:
      - {{name: renewals, when: {{type: Renewal}}, rate: 0.01}}
    clawback: {{window_days: 120}}
"""


def _write_deals(directory: Path, rng: random.Random, rep_ids: list[str], deals: int) -> None:
    reps = len(rep_ids)
    year_start = date(2026, 1, 1)
    splits: list[tuple[str, str, str]] = []
    with (directory / "deals.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "owner_id", "amount", "close_date", "status", "cancel_date", "type",
             "created_date"]
        )  # fmt: skip
        for index in range(deals):
            deal_id = f"006B{index:014d}"
            owner = rng.randrange(reps)
            close = year_start + timedelta(days=rng.randrange(365))
            status = STATUSES[rng.randrange(100)]
            cancel = (
                close + timedelta(days=rng.randrange(1, 150)) if status == "cancelled" else None
            )
            cents = rng.randrange(50_000, 6_000_000)
            amount = f"{cents // 100}.{cents % 100:02d}"
            writer.writerow(
                [
                    deal_id,
                    rep_ids[owner],
                    amount,
                    close.isoformat(),
                    status,
                    cancel.isoformat() if cancel else "",
                    TYPES[index % 3],
                    (close - timedelta(days=rng.randrange(5, 120))).isoformat(),
                ]
            )
            if status == "won" and index % 20 == 0:
                partner = rep_ids[(owner + 1) % reps]
                splits += [(deal_id, rep_ids[owner], "60"), (deal_id, partner, "40")]
    with (directory / "splits.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["deal_id", "rep_id", "percent"])
        writer.writerows(splits)


def csv_read_seconds(path: Path) -> float:
    """Python's csv module alone reading the file: the floor any loader stands on."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        with path.open(newline="", encoding="utf-8") as handle:
            for _row in csv.reader(handle):
                pass
        best = min(best, time.perf_counter() - started)
    return best


def run_calc(directory: Path, config: str, extra: list[str], repeat: int) -> tuple[float, str]:
    """`calc` in a child process, the best of ``repeat`` runs: (wall seconds, its summary)."""
    command = [
        sys.executable,
        "-m",
        "connector.cli",
        "--config",
        str(directory / config),
        "calc",
        "--deals",
        str(directory / "deals.csv"),
        "--reps",
        str(directory / "reps.csv"),
        "--splits",
        str(directory / "splits.csv"),
        "--as-of",
        "2026-12-31",
        "--output",
        str(directory / f"statements-{config}.json"),
        *extra,
    ]
    best = float("inf")
    summary = ""
    for _ in range(repeat):
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - started)
        if completed.returncode != 0:
            sys.exit(f"calc failed ({completed.returncode}):\n{completed.stderr}")
        summary = completed.stderr.strip().splitlines()[-1]
    return best, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each calc; the best counts")
    parser.add_argument("--no-goals", action="store_true", help="skip the runs with goals")
    args = parser.parse_args()

    directory = args.dir or Path(tempfile.mkdtemp(prefix="spm-calc-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_org(directory, args.reps, args.deals)
    print(
        f"generated {args.reps:,} reps and {args.deals:,} deals in "
        f"{time.perf_counter() - started:.1f} s under {directory}"
    )

    baseline = csv_read_seconds(directory / "deals.csv")
    wall, summary = run_calc(directory, "spm.yaml", [], args.repeat)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(summary)
    print(f"calc wall time:         {wall:8.2f} s  (best of {args.repeat})")
    print(f"deals per second:       {args.deals / wall:10,.0f}")
    print(f"peak memory:            {peak_kib / 1024:8.0f} MiB")
    print(f"csv.reader alone:       {baseline:8.2f} s")
    print(f"ratio calc / csv read:  {wall / baseline:8.1f}  (target <= 3)")
    if args.no_goals:
        return
    with_goals, summary = run_calc(directory, "spm-goals.yaml", [], args.repeat)
    print(summary)
    print(f"with goals and teams:   {with_goals:8.2f} s  (4 goals a plan, 2 of them team goals)")
    print(f"ratio goals / without:  {with_goals / wall:8.2f}  (target <= 1.2)")
    leads = ["--leads", str(directory / "leads.csv")]
    with_leads, _ = run_calc(directory, "spm-goals-leads.yaml", leads, args.repeat)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"and lead-to-sale:       {with_leads:8.2f} s  ({args.deals // 10:,} leads)")
    print(f"ratio / without:        {with_leads / wall:8.2f}")
    print(f"peak memory (any run):  {peak_kib / 1024:8.0f} MiB")


if __name__ == "__main__":
    main()
