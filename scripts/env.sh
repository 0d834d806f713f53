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
