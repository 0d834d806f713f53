#!/usr/bin/env bash
# Bring up a throw-away Debian host (a systemd container), deploy the nginx + supervisord
# topology into it with the playbook users run, and show it answering.
#   scripts/demo.sh          deploy (again) and show
#   scripts/demo.sh clean    remove the demo host
set -euo pipefail
cd "$(dirname "$0")/.."
host=aiodeploy-demo

if [[ "${1:-}" == clean ]]; then
    scripts/systemd-host.sh rm "$host"
    exit 0
fi

scripts/setup.sh
source scripts/env.sh

if [[ "$(docker inspect -f '{{.State.Running}}' "$host" 2>/dev/null)" != true ]]; then
    echo "== Starting the demo host $host"
    scripts/systemd-host.sh start "$host"
fi

install_collection
inventory=inventory/demo/hosts.yml
ansible-playbook -i "$inventory" extensions/molecule/shared/prepare.yml >/dev/null
echo "== ansible-playbook -i $inventory playbooks/nginx_supervisord.yml"
ansible-playbook -i "$inventory" playbooks/nginx_supervisord.yml

echo "== The site, from inside $host"
show() { echo "\$ $*"; docker exec "$host" "$@"; echo; }
show curl -sS http://127.0.0.1/
for _ in 1 2 3 4; do show curl -sS http://127.0.0.1/health; done
show curl -sS -i http://127.0.0.1/static/hello.txt
show supervisorctl status
echo "Log in with: docker exec -it $host bash      Remove with: make demo-clean"
