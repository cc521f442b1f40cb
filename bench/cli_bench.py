"""How fast `spm-connector --help` answers, and what it imports.

Runs the console script's module in a fresh interpreter --runs times (default 20) and
prints the best and median wall time, the bare interpreter's own start-up for
comparison, and which heavy packages the help imported (none should be: the
target is 250 ms or less on an idle machine).

Usage: python bench/cli_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("sqlalchemy", "alembic", "flask", "rich", "simple_salesforce", "hubspot", "pydantic")
PROBE = (
    "import sys\n"
    "from connector.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
)


def timed(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    bare = timed([sys.executable, "-c", "pass"], args.runs)
    helped = timed([sys.executable, "-m", "connector.cli", "--help"], args.runs)
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    for label, times in (("python -c pass", bare), ("spm-connector --help", helped)):
        best, median = min(times) * 1000, statistics.median(times) * 1000
        print(f"{label + ':':24} best {best:6.0f} ms  median {median:6.0f} ms")
    print("target for --help: 250 ms or less")
    print(f"heavy packages imported: {probe.stderr.strip() or 'none'}")


if __name__ == "__main__":
    main()
