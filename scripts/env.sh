# shellcheck shell=bash
# Sourced by the scripts: the development virtualenv and a collection home inside the checkout.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ANSIBLE_HOME="$root/.ansible"
export ANSIBLE_COLLECTIONS_PATH="$ANSIBLE_HOME/collections"
export PATH="$root/.venv/bin:$PATH"
export PY_COLORS=1 ANSIBLE_FORCE_COLOR=1

# Install this checkout as aiodeploy.aiohttp, so playbooks and lint resolve its roles by name.
install_collection() {
    ansible-galaxy collection install --force --offline -p "$ANSIBLE_COLLECTIONS_PATH" "$root" >/dev/null
}

# A scenario's log (molecule test) shows its testinfra verifier ran tests and all passed: Molecule itself succeeds
# with "Skipping, no tests found", and tests/strict.py fails a run that skipped any.
scenario_verified() {
    local summary
    summary=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^=+ .*[0-9]+ passed.* in [0-9.]+s' | tail -n 1)
    if [[ -z "$summary" ]] || grep -Eq 'failed|skipped|error' <<<"$summary"; then
        echo "the verifier of $(basename "$1" .log) ran no test, or not all passed: ${summary:-no pytest summary in the log}"
        return 1
    fi
}
