#!/usr/bin/env bash
# ansible-test sanity without Docker. ansible-test lists content with git and wants the collection
# at ansible_collections/<namespace>/<name>: the checkout's files (tracked and new) are copied to
# .cache/sanity/ansible_collections/aiodeploy/aiohttp, in a git repository of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

work=$root/.cache/sanity/ansible_collections/aiodeploy/aiohttp
rm -rf "$root/.cache/sanity"
mkdir -p "$work"
# The test applications in extensions/molecule/shared/apps are kept exactly as aiohttp's guide and their
# authors wrote them (not collection content, not in the artifact), so they are not held to its style.
git ls-files -z --cached --others --exclude-standard -- . ':!extensions/molecule/shared/apps' \
    | tar --null -T - -c | tar -x -C "$work"
git -C "$work" init -q
git -C "$work" add -A

# ansible-test bootstraps pip into its virtualenvs with a downloaded script: give it the stand-in,
# in a home of its own so nothing lands in the user's.
export HOME=${XDG_CACHE_HOME:-$HOME/.cache}/aiodeploy/ansible-test-home
pip_version=$(grep -oP "pip='\K[0-9.]+" "$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
mkdir -p "$HOME/.ansible/test/cache"
cp tests/sanity/get_pip.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

cd "$work"
ansible-test sanity --venv --python "$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" "$@"
