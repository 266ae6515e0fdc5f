#!/usr/bin/env bash
# Run a manage.py command on an installed docling-service, as the service
# user and with the services' environment file, e.g.
#
#   sudo /opt/docling-service/deploy/manage.sh create_api_key --tenant acme --name laptop
#   sudo /opt/docling-service/deploy/manage.sh prune_storage --dry-run
#
# APP_DIR, ENV_FILE and SERVICE_USER have the defaults of deploy/install.sh.

set -euo pipefail

# shellcheck source=deploy/install.sh
. "$(dirname "${BASH_SOURCE[0]}")/install.sh"

[[ "$(id -u)" -eq 0 ]] || die "run as root (sudo $0), to read $ENV_FILE and switch to $SERVICE_USER"
[[ -r "$ENV_FILE" ]] || die "$ENV_FILE is missing; run deploy/install.sh first"
run_with_env --user "$SERVICE_USER" "$APP_DIR/.venv/bin/python" manage.py "$@"
