#!/usr/bin/env bash
# Mutation testing of the calculation core: mutmut mutates each core module
# ([tool.mutmut] in pyproject.toml), runs the calculation tests against every
# mutant in a fresh process (forkserver: no cache filled by an earlier test can
# answer for a mutant), and this prints the score per module.
#
#   bash bench/mutation.sh            # every core module (about 15 min on 2 cores)
#   bash bench/mutation.sh money      # the mutants of one module (name as in the path)
#
# Not part of CI. Run it before landing a change to the core; the equivalent
# mutants that remain are listed, each with its reason, in bench/equivalent-mutants.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check 'mutmut>=3.8,<4'
# The property tests run once per mutant: fewer examples keep a run within the hour.
export SPM_PROPERTY_EXAMPLES="${SPM_PROPERTY_EXAMPLES:-5}"
rm -rf mutants
selection=()
if [ $# -gt 0 ]; then
    for module in "$@"; do
        selection+=("connector.core.${module}.*")
    done
fi
python3 -m mutmut run --max-children "$(nproc)" "${selection[@]}" > mutants.log 2>&1 || true
python3 bench/mutation_score.py
