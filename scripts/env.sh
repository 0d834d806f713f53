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

# A scenario's verifier ran tests and all passed: tests/strict.py writes what the run checked to the file named by
# AIODEPLOY_TEST_REPORT, and a verifier that never ran pytest (Molecule: "Skipping, no tests found") writes nothing.
scenario_verified() {
    python3 - "$1" <<'PY'
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as file:
        report = json.load(file)
except (OSError, ValueError) as error:
    sys.exit(f"the verifier wrote no report of its tests ({error})")
if report["exitstatus"] != 0 or not report["passed"] or report["failed"] or report["error"] or report["skipped"]:
    sys.exit(f"the verifier ran no test, or not all passed: {report}")
print(f"verified: {report['passed']} tests passed")
PY
}
