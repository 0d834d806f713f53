#!/usr/bin/env bash
# The whole test suite: lint, ansible-test sanity, the collection's own tests (argument specs,
# bad input, the built artifact), then every Molecule scenario (full sequence: create, converge,
# idempotence, check mode, a new version, verify, destroy), one at a time.
#   scripts/test.sh            everything
#   scripts/test.sh lint       lint only
#   AIODEPLOY_SCENARIOS="nginx_supervisord" scripts/test.sh   only these scenarios (CI clears it)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# Which scenarios, first: a wrong choice fails before anything runs.
all_scenarios=$(for f in extensions/molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
[[ -n "$all_scenarios" ]] || { echo "no Molecule scenario found"; exit 1; }
if [[ -v AIODEPLOY_SCENARIOS ]]; then
    # A subset is a choice made by hand: it must name scenarios, and only ones that exist.
    scenarios=$(xargs <<<"$AIODEPLOY_SCENARIOS")  # blanks and newlines alone leave nothing
    [[ -n "$scenarios" ]] || { echo "AIODEPLOY_SCENARIOS is set but names no scenario (unset it to run them all)"; exit 1; }
    for scenario in $scenarios; do
        grep -qxF "$scenario" <<<"$all_scenarios" || { echo "AIODEPLOY_SCENARIOS names '$scenario', which is not one of: $(xargs <<<"$all_scenarios")"; exit 1; }
    done
    echo "Only these Molecule scenarios (AIODEPLOY_SCENARIOS): $scenarios"
else
    scenarios=$all_scenarios
fi

scripts/setup.sh || exit 1
source scripts/env.sh

step() { printf '\n==== %s\n' "$*"; }

step "Lint"
install_collection || exit 1
if ! { yamllint -s . && ansible-lint && antsibull-changelog lint; }; then
    echo "lint failed"
    exit 1
fi
[[ "${1:-}" == lint ]] && exit 0

step "ansible-test sanity"
scripts/sanity.sh || { echo "ansible-test sanity failed"; exit 1; }

step "Collection tests (pytest tests/)"
pytest || { echo "collection tests failed"; exit 1; }

passed=0 failed=0 failures=()
logs=$(mktemp -d "${TMPDIR:-/tmp}/aiodeploy-test.XXXXXX")
for scenario in $scenarios; do
    step "Molecule scenario $scenario"
    start=$SECONDS
    # A scenario passes only when Molecule succeeds and its verifier ran tests and all passed (scenario_verified).
    if AIODEPLOY_TEST_REPORT="$logs/$scenario.tests.json" molecule test -s "$scenario" 2>&1 | tee "$logs/$scenario.log" \
        && scenario_verified "$logs/$scenario.tests.json"; then
        passed=$((passed + 1))
        echo "scenario $scenario passed in $((SECONDS - start)) s"
    else
        failed=$((failed + 1)) failures+=("$scenario")
        echo "scenario $scenario FAILED after $((SECONDS - start)) s"
        molecule destroy -s "$scenario" >/dev/null 2>&1
    fi
done

step "Summary"
# What failed, where the end of a long log shows it: failed tasks and tests, and the step they failed in.
for scenario in "${failures[@]}"; do
    echo "--- $scenario (whole log: $logs/$scenario.log)"
    sed 's/\x1b\[[0-9;]*m//g' "$logs/$scenario.log" \
        | grep -E '^\W*(fatal:|FAILED |ERROR |E +|.*failed=[1-9])|Executed: Failed' | grep -v 'FAILED - RETRYING' | cut -c1-400 | tail -n 60
done
((failed)) && echo "failed scenarios: ${failures[*]}"
echo "scenarios: $passed passed, $failed failed"
((failed == 0))
