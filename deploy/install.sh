#!/usr/bin/env bash
# Install or upgrade docling-service on Ubuntu 24.04: systemd services
# behind Nginx, with the distribution's PostgreSQL, Redis and clamd.
#
# Usage, as root, from the repository (ideally checked out at
# /opt/docling-service and owned by root):
#
#   SERVER_NAME=docling.example.com deploy/install.sh
#
# Every step checks what is already there, so running the script again
# upgrades the code and configuration in place. It keeps the data, the
# environment file (secrets), the database and existing certificates.
#
# Environment (default in brackets):
#   SERVER_NAME          public host name (required on the first run; later
#                        runs read it from DJANGO_ALLOWED_HOSTS)
#   APP_DIR              code and virtual environment [this repository]
#   ENV_FILE             settings of every unit [/etc/docling-service/env]
#   DATA_ROOT            uploads, artifacts, models [/var/lib/docling-service]
#   STATIC_ROOT          collectstatic output [/var/www/docling-service/static]
#   DATABASE_URL         PostgreSQL URL for a new ENV_FILE [a local database
#                        "docling_service" owned by the role docling-svc,
#                        reached over the unix socket with peer authentication]
#   TLS_CERTIFICATE, TLS_CERTIFICATE_KEY
#                        [/etc/letsencrypt/live/$SERVER_NAME/fullchain.pem and
#                        privkey.pem; while they are missing, a self-signed
#                        pair under /etc/docling-service/tls is used]
#   HTTP_LISTEN, HTTPS_LISTEN  Nginx listen addresses [80, 443]
#   SKIP_APT=1           do not run apt-get
#   SKIP_MODELS=1        do not download Docling's models
#   READY_TIMEOUT_SECONDS  how long the final /readyz check waits [120]
#
# Exit status: 0 when /readyz returns 200 at the end, 1 otherwise.

set -euo pipefail

readonly SERVICE_USER_DEFAULT="docling-svc"
readonly UNITS=(
    docling-service.target
    docling-service-web.socket
    docling-service-web.service
    docling-service-worker.service
    docling-service-beat.service
)
readonly APT_PACKAGES=(
    nginx openssl acl curl ca-certificates
    python3 python3-venv
    postgresql
    redis-server
    clamav clamav-daemon clamav-freshclam
    tesseract-ocr tesseract-ocr-eng
)
# Placeholders render_template replaces: @NAME@ becomes the value of $NAME.
readonly TEMPLATE_VARIABLES=(
    APP_DIR DATA_ROOT STATIC_ROOT ENV_FILE GUNICORN_SOCKET NGINX_GROUP
    SERVER_NAME HTTP_LISTEN HTTPS_LISTEN TLS_CERTIFICATE TLS_CERTIFICATE_KEY
    NGINX_LOG_DIR ARTIFACT_ACCEL_PREFIX CLIENT_MAX_BODY_SIZE_MB
    DJANGO_SECRET_KEY DATABASE_URL
)

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

APP_DIR="${APP_DIR:-$(dirname "$script_dir")}"
ENV_FILE="${ENV_FILE:-/etc/docling-service/env}"
SERVICE_USER="${SERVICE_USER:-$SERVICE_USER_DEFAULT}"
NGINX_GROUP="${NGINX_GROUP:-www-data}"
NGINX_LOG_DIR="${NGINX_LOG_DIR:-/var/log/nginx}"
GUNICORN_SOCKET="${GUNICORN_SOCKET:-/run/docling-svc/gunicorn.sock}"
HTTP_LISTEN="${HTTP_LISTEN:-80}"
HTTPS_LISTEN="${HTTPS_LISTEN:-443}"
SYSTEMD_DIR="${SYSTEMD_DIR:-/etc/systemd/system}"
NGINX_SITE="${NGINX_SITE:-/etc/nginx/sites-available/docling-service}"
CLAMD_CONF="${CLAMD_CONF:-/etc/clamav/clamd.conf}"
CLAMAV_DATABASE_DIR="${CLAMAV_DATABASE_DIR:-/var/lib/clamav}"
REDIS_CONF="${REDIS_CONF:-/etc/redis/redis.conf}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-120}"
# The units' CacheDirectory (HOME, XDG_CACHE_HOME and HF_HOME of the services).
CACHE_DIR="${CACHE_DIR:-/var/cache/docling-service}"

say() { printf '\n==> %s\n' "$*"; }
log() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

have_systemd() {
    [[ -d /run/systemd/system ]]
}

# --- files ---------------------------------------------------------------------

# Write stdin to TARGET with MODE and OWNER:GROUP, through a temporary file
# in the same folder, so that readers see the old file or the new one.
write_file() {
    local target="$1" mode="$2" owner="$3" temporary
    mkdir -p "$(dirname "$target")"
    temporary="$(mktemp "$(dirname "$target")/.$(basename "$target").XXXXXX")"
    cat >"$temporary"
    chmod "$mode" "$temporary"
    chown "$owner" "$temporary"
    mv -f "$temporary" "$target"
}

# Print TEMPLATE with every @NAME@ of TEMPLATE_VARIABLES replaced by $NAME.
# Fails when a placeholder it uses is empty or unknown.
render_template() {
    local template="$1" content name value leftover
    content="$(<"$template")"
    # Bash 5.2 reads & in a replacement as the matched text unless this is off.
    shopt -u patsub_replacement 2>/dev/null || true
    for name in "${TEMPLATE_VARIABLES[@]}"; do
        [[ "$content" == *"@$name@"* ]] || continue
        value="${!name:-}"
        [[ -n "$value" ]] || die "$template needs $name, which is empty; set it in the environment"
        content="${content//"@$name@"/"$value"}"
    done
    leftover="$(grep -oE '@[A-Z_]+@' <<<"$content" | sort -u | tr '\n' ' ' || true)"
    [[ -z "$leftover" ]] || die "$template has unknown placeholders: $leftover"
    printf '%s\n' "$content"
}

# Print the value of NAME in the environment file ("" when it is not set).
env_file_value() {
    local name="$1"
    [[ -f "$ENV_FILE" ]] || return 0
    sed -n "s/^${name}=//p" "$ENV_FILE" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

# Set NAME=VALUE in the environment file, replacing an existing line.
set_env_file_value() {
    local name="$1" value="$2"
    if grep -q "^${name}=" "$ENV_FILE"; then
        local escaped="${value//\\/\\\\}"
        escaped="${escaped//|/\\|}"
        escaped="${escaped//&/\\&}"
        sed -i "s|^${name}=.*|${name}=${escaped}|" "$ENV_FILE"
    else
        printf '%s=%s\n' "$name" "$value" >>"$ENV_FILE"
    fi
}

# Run a command with exactly the environment file's variables (and PATH),
# as the unit would, optionally as another user: run_with_env [--user U] CMD...
run_with_env() {
    local user=""
    if [[ "${1:-}" == "--user" ]]; then
        user="$2"
        shift 2
    fi
    local -a variables=("PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$CACHE_DIR" "PYTHONDONTWRITEBYTECODE=1")
    local line
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || continue
        variables+=("$line")
    done <"$ENV_FILE"
    if [[ -n "$user" ]]; then
        (cd "$APP_DIR" && runuser -u "$user" -- env -i "${variables[@]}" "$@")
    else
        (cd "$APP_DIR" && env -i "${variables[@]}" "$@")
    fi
}

# --- steps -----------------------------------------------------------------------

check_system() {
    [[ "$(id -u)" -eq 0 ]] || die "run as root (sudo $0)"
    [[ -f "$APP_DIR/manage.py" ]] || die "APP_DIR=$APP_DIR is not a docling-service checkout (no manage.py)"
    local system=""
    # shellcheck source=/dev/null
    [[ -r /etc/os-release ]] && system="$(. /etc/os-release && echo "${ID:-} ${VERSION_ID:-}")"
    if [[ "$system" != "ubuntu 24.04" ]]; then
        log "this script is written for Ubuntu 24.04, found '${system:-unknown}'; continuing"
    fi
    if ! have_systemd; then
        log "systemd is not running (not PID 1): units are installed but not started, and /readyz is not checked"
    fi
}

install_packages() {
    say "System packages"
    if [[ "${SKIP_APT:-0}" == "1" ]]; then
        echo "SKIP_APT=1: not running apt-get."
        return
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}"
}

create_service_user() {
    say "User and group $SERVICE_USER"
    getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --gid "$SERVICE_USER" --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    getent group "$NGINX_GROUP" >/dev/null || die "group $NGINX_GROUP (Nginx's workers) does not exist; is nginx installed?"
}

# DATA_ROOT belongs to the service user (mode 0750). Nginx's group may pass
# through DATA_ROOT and read DATA_ROOT/artifacts, through ACLs; it can write
# nothing and read nothing else. The default ACL gives new artifact folders
# and files the same read access, within the file's group bits (0640).
prepare_data_root() {
    say "Folders under $DATA_ROOT"
    local folder
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_ROOT"
    for folder in uploads artifacts work models beat; do
        install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_ROOT/$folder"
    done
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$CACHE_DIR"
    setfacl -m "g:$NGINX_GROUP:--x" "$DATA_ROOT"
    setfacl -R -m "g:$NGINX_GROUP:rX" "$DATA_ROOT/artifacts"
    setfacl -R -d -m "g:$NGINX_GROUP:rX" "$DATA_ROOT/artifacts"
}

ensure_local_database() {
    # The role is named after the service user, so peer authentication over
    # the unix socket needs no password.
    local exists
    exists="$(runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$SERVICE_USER'")"
    [[ "$exists" == "1" ]] || runuser -u postgres -- createuser "$SERVICE_USER"
    exists="$(runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'docling_service'")"
    [[ "$exists" == "1" ]] || runuser -u postgres -- createdb --owner "$SERVICE_USER" docling_service
}

write_env_file() {
    say "Environment file $ENV_FILE"
    install -d -m 0750 -o root -g "$SERVICE_USER" "$(dirname "$ENV_FILE")"
    if [[ -f "$ENV_FILE" ]]; then
        echo "Keeping the existing $ENV_FILE."
        return
    fi
    [[ -n "${SERVER_NAME:-}" ]] || die "set SERVER_NAME (the public host name) for the first install"
    if [[ -z "${DATABASE_URL:-}" ]]; then
        ensure_local_database
        # The unix socket folder goes in the path; django-environ reads a
        # path that starts with / as the host (a socket folder).
        DATABASE_URL="postgres://${SERVICE_USER}@/%2Frun%2Fpostgresql/docling_service"
    fi
    DATA_ROOT="${DATA_ROOT:-/var/lib/docling-service}"
    STATIC_ROOT="${STATIC_ROOT:-/var/www/docling-service/static}"
    ARTIFACT_ACCEL_PREFIX="${ARTIFACT_ACCEL_PREFIX:-/protected-artifacts/}"
    # shellcheck disable=SC2034 # render_template reads it through ${!name}.
    DJANGO_SECRET_KEY="$(openssl rand -base64 48 | tr -d '\n/+=')"
    render_template "$script_dir/env.template" | write_file "$ENV_FILE" 0640 "root:$SERVICE_USER"
    echo "Wrote $ENV_FILE (secret key generated)."
}

# Read the settings later steps need from the environment file.
load_settings() {
    DATA_ROOT="$(env_file_value DATA_ROOT)"
    STATIC_ROOT="$(env_file_value STATIC_ROOT)"
    ARTIFACT_ACCEL_PREFIX="$(env_file_value ARTIFACT_ACCEL_PREFIX)"
    ARTIFACT_ACCEL_PREFIX="${ARTIFACT_ACCEL_PREFIX:-/protected-artifacts/}"
    UPLOAD_MAX_SIZE_MB="$(env_file_value UPLOAD_MAX_SIZE_MB)"
    UPLOAD_MAX_SIZE_MB="${UPLOAD_MAX_SIZE_MB:-200}"
    [[ "$UPLOAD_MAX_SIZE_MB" =~ ^[1-9][0-9]*$ ]] || die "UPLOAD_MAX_SIZE_MB in $ENV_FILE must be a positive integer, got '$UPLOAD_MAX_SIZE_MB'"
    # Django accepts a request of the file limit plus 1 MiB of multipart
    # framing (documents/views.py, MULTIPART_OVERHEAD_BYTES); Nginx matches it.
    # shellcheck disable=SC2034 # render_template reads it through ${!name}.
    CLIENT_MAX_BODY_SIZE_MB=$((UPLOAD_MAX_SIZE_MB + 1))
    if [[ -z "${SERVER_NAME:-}" ]]; then
        SERVER_NAME="$(env_file_value DJANGO_ALLOWED_HOSTS)"
        SERVER_NAME="${SERVER_NAME%%,*}"
    fi
    [[ -n "$DATA_ROOT" && -n "$STATIC_ROOT" && -n "$SERVER_NAME" ]] \
        || die "$ENV_FILE must set DATA_ROOT, STATIC_ROOT and DJANGO_ALLOWED_HOSTS"
    [[ "$DATA_ROOT" == /* && "$STATIC_ROOT" == /* ]] || die "DATA_ROOT and STATIC_ROOT must be absolute paths"
    TLS_CERTIFICATE="${TLS_CERTIFICATE:-/etc/letsencrypt/live/$SERVER_NAME/fullchain.pem}"
    TLS_CERTIFICATE_KEY="${TLS_CERTIFICATE_KEY:-/etc/letsencrypt/live/$SERVER_NAME/privkey.pem}"
}

install_python_environment() {
    say "Python environment in $APP_DIR/.venv"
    local venv="$APP_DIR/.venv"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    # Python 3.12's venv has no setuptools, which the editable install needs.
    "$venv/bin/pip" install --quiet --upgrade pip setuptools wheel
    "$venv/bin/pip" install --quiet -r "$APP_DIR/requirements.txt"
    # Their declared dependencies would pull in a second torch and opencv;
    # see requirements-nodeps.txt.
    "$venv/bin/pip" install --quiet --no-deps -r "$APP_DIR/requirements-nodeps.txt"
    "$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e "$APP_DIR"
    # The services cannot write to APP_DIR, so the bytecode is compiled now.
    "$venv/bin/python" -m compileall -q "$APP_DIR" -x '/\.venv/' >/dev/null || true
}

# Set clamd's limits and alerts in CONF to what scripts/clamd.sh computes for
# UPLOAD_MAX_SIZE_MB, replacing existing lines and appending missing ones.
# Debian's clamav-daemon keeps manual edits across upgrades (README.Debian).
configure_clamd() {
    local conf="$1" limits key value
    limits="$(UPLOAD_MAX_SIZE_MB="$UPLOAD_MAX_SIZE_MB" DATA_ROOT="$DATA_ROOT" "$APP_DIR/scripts/clamd.sh" limits)"
    # Deprecated names of AlertEncryptedArchive and AlertExceedsMax; Debian's
    # file sets ArchiveBlockEncrypted false, which would fight the new line.
    sed -i -E '/^(ArchiveBlockEncrypted|ArchiveBlockMax)[[:space:]]/d' "$conf"
    while read -r key value; do
        [[ -z "$key" || "$key" == \#* ]] && continue
        if grep -qE "^${key}[[:space:]]" "$conf"; then
            sed -i -E "s|^${key}[[:space:]].*|${key} ${value}|" "$conf"
        else
            printf '%s %s\n' "$key" "$value" >>"$conf"
        fi
    done <<<"$limits"
}

has_official_signatures() {
    compgen -G "$CLAMAV_DATABASE_DIR/main.c[vl]d" >/dev/null \
        && compgen -G "$CLAMAV_DATABASE_DIR/daily.c[vl]d" >/dev/null
}

setup_clamav() {
    say "ClamAV: limits for UPLOAD_MAX_SIZE_MB=$UPLOAD_MAX_SIZE_MB, signatures, clamd"
    configure_clamd "$CLAMD_CONF"
    install -D -m 0644 "$script_dir/systemd/clamav-daemon.service.d/docling-service.conf" \
        /etc/systemd/system/clamav-daemon.service.d/docling-service.conf
    if ! has_official_signatures; then
        # The freshclam service holds a lock on the database while it runs.
        if have_systemd; then systemctl stop clamav-freshclam.service || true; fi
        freshclam --stdout || log "freshclam failed; clamd cannot start without signatures (see /var/log/clamav/freshclam.log)"
    fi
    has_official_signatures || die "no official ClamAV signatures in $CLAMAV_DATABASE_DIR: the prod settings refuse to start. Run freshclam once the machine can reach database.clamav.net."
    if have_systemd; then
        systemctl daemon-reload
        systemctl enable --now clamav-freshclam.service
        systemctl enable clamav-daemon.service
        systemctl restart clamav-daemon.service
    fi
}

setup_redis() {
    say "Redis"
    install -D -m 0644 "$script_dir/redis/docling-service.conf" /etc/redis/docling-service.conf
    if ! grep -qxF "include /etc/redis/docling-service.conf" "$REDIS_CONF"; then
        printf '\n# Added by docling-service deploy/install.sh.\ninclude /etc/redis/docling-service.conf\n' >>"$REDIS_CONF"
    fi
    if have_systemd; then
        systemctl enable redis-server.service
        systemctl restart redis-server.service
    fi
}

download_models() {
    say "Docling models"
    local models_dir="$DATA_ROOT/models"
    if [[ -n "$(env_file_value DOCLING_ARTIFACTS_PATH)" ]]; then
        echo "Models already configured at $(env_file_value DOCLING_ARTIFACTS_PATH)."
        return
    fi
    if [[ "${SKIP_MODELS:-0}" == "1" ]]; then
        echo "SKIP_MODELS=1: not downloading; the offline CDLA layout engine is used."
        set_env_file_value DOCLING_LAYOUT_ENGINE cdla
        return
    fi
    if run_with_env --user "$SERVICE_USER" HF_HUB_OFFLINE=0 HF_HOME="$CACHE_DIR/huggingface" \
        "$APP_DIR/.venv/bin/docling-tools" models download layout tableformer -o "$models_dir"; then
        set_env_file_value DOCLING_ARTIFACTS_PATH "$models_dir"
        set_env_file_value DOCLING_LAYOUT_ENGINE auto
    else
        log "the model download failed: the offline CDLA layout engine is configured, and table structure recognition is unavailable until the download succeeds"
        set_env_file_value DOCLING_LAYOUT_ENGINE cdla
    fi
}

migrate_and_collect_static() {
    say "Database migrations and static files"
    run_with_env --user "$SERVICE_USER" "$APP_DIR/.venv/bin/python" manage.py migrate --noinput
    install -d -m 0755 -o root -g root "$STATIC_ROOT"
    run_with_env "$APP_DIR/.venv/bin/python" manage.py collectstatic --noinput --clear >/dev/null
    run_with_env --user "$SERVICE_USER" "$APP_DIR/.venv/bin/python" manage.py check --deploy \
        || log "manage.py check --deploy reported problems (above)"
}

install_units() {
    say "systemd units in $SYSTEMD_DIR"
    local unit
    for unit in "${UNITS[@]}"; do
        render_template "$script_dir/systemd/$unit" | write_file "$SYSTEMD_DIR/$unit" 0644 root:root
    done
    if have_systemd; then
        systemctl daemon-reload
        systemctl enable "${UNITS[@]}"
        systemctl restart docling-service-web.socket
        systemctl restart docling-service.target
    fi
}

# A self-signed pair lets Nginx start before the real certificate exists.
ensure_certificate() {
    if [[ -f "$TLS_CERTIFICATE" && -f "$TLS_CERTIFICATE_KEY" ]]; then
        return
    fi
    local folder=/etc/docling-service/tls
    log "no certificate at $TLS_CERTIFICATE; using a self-signed one in $folder until you run certbot (deploy/README.md)"
    TLS_CERTIFICATE="$folder/self-signed.pem"
    TLS_CERTIFICATE_KEY="$folder/self-signed.key"
    if [[ ! -f "$TLS_CERTIFICATE" ]]; then
        install -d -m 0700 "$folder"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$SERVER_NAME" \
            -keyout "$TLS_CERTIFICATE_KEY" -out "$TLS_CERTIFICATE" 2>/dev/null
    fi
}

install_nginx_site() {
    say "Nginx site $NGINX_SITE"
    ensure_certificate
    render_template "$script_dir/nginx/docling-service.conf" | write_file "$NGINX_SITE" 0644 root:root
    ln -sfn "$NGINX_SITE" "/etc/nginx/sites-enabled/$(basename "$NGINX_SITE")"
    nginx -t
    if have_systemd; then
        systemctl enable nginx.service
        systemctl reload-or-restart nginx.service
    fi
}

check_ready() {
    say "Readiness: https://$SERVER_NAME/readyz"
    if ! have_systemd; then
        echo "systemd is not running: start the services, then run: curl -k https://$SERVER_NAME/readyz"
        return 0
    fi
    local port="${HTTPS_LISTEN##*:}" deadline=$((SECONDS + READY_TIMEOUT_SECONDS)) body=""
    port="${port%% *}"
    while ((SECONDS < deadline)); do
        # -k: the certificate may still be the self-signed one.
        if body="$(curl -sS -k --max-time 10 --resolve "$SERVER_NAME:$port:127.0.0.1" \
            -w '\n%{http_code}' "https://$SERVER_NAME:$port/readyz" 2>&1)" \
            && [[ "${body##*$'\n'}" == "200" ]]; then
            echo "${body%$'\n'*}"
            echo "docling-service is ready."
            return 0
        fi
        sleep 3
    done
    echo "${body%$'\n'*}"
    die "/readyz did not return 200 within ${READY_TIMEOUT_SECONDS}s; see journalctl -u 'docling-service-*'"
}

main() {
    check_system
    install_packages
    create_service_user
    write_env_file
    load_settings
    prepare_data_root
    install_python_environment
    setup_redis
    setup_clamav
    download_models
    migrate_and_collect_static
    install_units
    install_nginx_site
    check_ready
}

# Sourcing the script (the tests do) defines the functions without running them.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
