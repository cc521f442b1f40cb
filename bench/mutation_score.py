"""Print mutmut's results per core module: killed, survived, not covered, score.

Reads the ``.meta`` files mutmut leaves under ``mutants/``. The score is the
share of mutants the tests kill (a timeout counts as killed, as mutmut counts
it); a mutant no test covers counts against it. ``net`` leaves out the
survivors listed, with their reasons, in bench/equivalent-mutants.md.
``--survivors`` lists the others by name, for ``python3 -m mutmut show NAME``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 killed, 0 survived,
# 5 and 33 no test covers it, timeouts (24, -24, 36, 152, 255) and crashes (-9, -11)
# count as killed; 37 is a kill by the type checker.
KILLED = {1, 3, 24, -24, 36, 37, 152, 255, -9, -11}
SURVIVED = {0}
UNCOVERED = {5, 33}
EQUIVALENT_LIST = Path(__file__).with_name("equivalent-mutants.md")


def equivalent() -> set[str]:
    """``module.function__mutmut_N`` names listed in bench/equivalent-mutants.md."""
    names: set[str] = set()
    module = ""
    for line in EQUIVALENT_LIST.read_text().splitlines():
        heading = re.match(r"^## (connector/\S+)\.py$", line)
        if heading:
            module = heading.group(1).replace("/", ".")
            continue
        for name in re.findall(r"`(x\S*__mutmut_\d+)`", line):
            names.add(f"{module}.{name}")
    return names


def main() -> int:
    root = Path("mutants")
    metas = sorted(root.glob("**/*.meta"))
    if not metas:
        print("no mutmut results under mutants/: run bench/mutation.sh first")
        return 1
    listed = equivalent()
    print(
        f"{'module':<34} {'mutants':>8} {'killed':>7} {'survived':>9} {'no test':>8} "
        f"{'score':>7} {'equiv.':>7} {'net':>7}"
    )
    survivors: list[str] = []
    for meta in metas:
        module = str(meta.relative_to(root)).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        ran = {name: code for name, code in codes.items() if code is not None}
        if not ran:
            continue
        killed = sum(1 for code in ran.values() if code in KILLED)
        survived = [name for name, code in ran.items() if code in SURVIVED]
        uncovered = sum(1 for code in ran.values() if code in UNCOVERED)
        excused = [name for name in survived if name in listed]
        survivors += [name for name in survived if name not in listed]
        print(
            f"{module:<34} {len(ran):>8} {killed:>7} {len(survived):>9} {uncovered:>8} "
            f"{killed / len(ran):>7.1%} {len(excused):>7} "
            f"{killed / (len(ran) - len(excused)):>7.1%}"
        )
    if "--survivors" in sys.argv:  # the ones no test pins and no reason excuses
        print("\n".join(sorted(survivors)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
