#!/usr/bin/env bash
# Run a private clamd for development, tests and CI.
#
# Usage: scripts/clamd.sh prepare|start|run|stop|status|limits
#
#   prepare  Write clamd.conf and freshclam.conf, then download the official
#            signatures with freshclam. When the download fails and the
#            database has no official signatures yet, install the project's
#            test signatures (EICAR and the clamav-testfiles sample) instead.
#            A later prepare keeps the official signatures it finds.
#   start    Start clamd in the background. clamd returns once it has loaded
#            its database (tens of seconds with the official signatures),
#            then this waits until it replies to PING. Runs prepare first when
#            the signature folder is empty.
#   run      Run clamd in the foreground, for `make run` and process
#            supervisors. Runs prepare first when the signature folder is
#            empty.
#   stop     Stop the clamd whose pid is in the pid file.
#   status   Print whether clamd runs and replies to PING. Exit status 0 when it
#            does, 3 when it does not run.
#   limits   Print the clamd.conf lines for the size limits and alerts that
#            follow from UPLOAD_MAX_SIZE_MB, for another clamd's config.
#
# Environment:
#   DATA_ROOT               state folder; clamd's files go to
#                           $DATA_ROOT/clamav/. A relative path is taken
#                           from the repository root (default: var)
#   CLAMD_SOCKET            unix socket path, plain or unix:///path
#                           (default: $DATA_ROOT/clamav/clamd.sock)
#   CLAMD_ADDRESS           the application's clamd address. A unix:// address
#                           sets the socket when CLAMD_SOCKET is unset. A
#                           tcp://127.0.0.1:PORT address also makes clamd
#                           listen on that loopback port.
#   CLAMD_DATABASE_DIR      signature folder (default: $DATA_ROOT/clamav/db)
#   UPLOAD_MAX_SIZE_MB      largest upload in MiB (default: 200). Sets
#                           StreamMaxLength to this plus 10% plus 1 MiB,
#                           MaxFileSize to 4 times StreamMaxLength (at most
#                           2047M) and MaxScanSize to twice MaxFileSize (at
#                           most 4000M)
#   CLAMD_START_TIMEOUT_SECONDS  how long start waits for PING after clamd
#                                has loaded its database (default: 30)
#   FRESHCLAM_TIMEOUT_SECONDS    how long prepare lets freshclam run
#                                (default: 300)
#   CLAMD_SKIP_FRESHCLAM=1  skip the download in prepare, for offline tests
#
# Files under $DATA_ROOT/clamav/: db/, tmp/, clamd.conf, freshclam.conf,
# clamd.sock, clamd.pid, clamd.log, freshclam.log.

set -euo pipefail

readonly TEST_SIGNATURE_BASENAME="docling-service-test"
readonly TESTFILES_CLAM_EXE="/usr/share/clamav-testfiles/clam.exe"
# The 68-byte EICAR anti-virus test file, as hex so that this script is not
# itself detected by a body signature.
readonly EICAR_HEX="58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a"
readonly EICAR_MD5="44d88612fea8a8f36de82e1278abb02f"
readonly EICAR_SIZE=68
# sun_path in struct sockaddr_un has room for 108 bytes, including the final NUL.
readonly UNIX_SOCKET_PATH_MAX=107

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$script_dir")"

die() {
    echo "clamd.sh: $*" >&2
    exit 1
}

log() {
    echo "clamd.sh: $*" >&2
}

require_positive_int() {
    local name="$1" value="$2"
    if ! [[ "$value" =~ ^[1-9][0-9]{0,8}$ ]]; then
        die "$name must be a positive integer below 10^9, got '$value'"
    fi
}

resolve_paths() {
    # A relative DATA_ROOT is taken from the repository root, as in
    # scripts/load_env.sh, so the script works from any folder.
    data_root="${DATA_ROOT:-var}"
    if [[ "$data_root" != /* ]]; then
        data_root="$repo_root/${data_root#./}"
    fi
    data_root="$(realpath -m "$data_root")"
    clamav_dir="$data_root/clamav"
    database_dir="$(realpath -m "${CLAMD_DATABASE_DIR:-$clamav_dir/db}")"
    temporary_dir="$clamav_dir/tmp"
    clamd_conf="$clamav_dir/clamd.conf"
    freshclam_conf="$clamav_dir/freshclam.conf"
    pid_file="$clamav_dir/clamd.pid"
    clamd_log="$clamav_dir/clamd.log"
    freshclam_log="$clamav_dir/freshclam.log"

    local address="${CLAMD_ADDRESS:-}"
    tcp_port=""
    if [[ -n "${CLAMD_SOCKET:-}" ]]; then
        socket_path="${CLAMD_SOCKET#unix://}"
    elif [[ "$address" == unix://* ]]; then
        socket_path="${address#unix://}"
    else
        socket_path="$clamav_dir/clamd.sock"
    fi
    [[ -n "$socket_path" ]] || die "the clamd socket path is empty; set CLAMD_SOCKET to a file path"
    socket_path="$(realpath -m "$socket_path")"
    if (( ${#socket_path} > UNIX_SOCKET_PATH_MAX )); then
        die "socket path $socket_path is longer than $UNIX_SOCKET_PATH_MAX bytes; set CLAMD_SOCKET or DATA_ROOT to a shorter path"
    fi

    if [[ "$address" == tcp://* ]]; then
        local host_port="${address#tcp://}"
        local host="${host_port%:*}"
        tcp_port="${host_port##*:}"
        if [[ "$host" != "127.0.0.1" && "$host" != "localhost" ]]; then
            die "CLAMD_ADDRESS=$address: this script makes clamd listen on 127.0.0.1 only; use tcp://127.0.0.1:PORT or a unix:// address"
        fi
        require_positive_int "the port in CLAMD_ADDRESS" "$tcp_port"
    elif [[ -n "$address" && "$address" != unix://* && "$address" != /* ]]; then
        die "CLAMD_ADDRESS=$address is invalid; expected unix:///path or tcp://127.0.0.1:PORT"
    fi
}

# Write stdin to $1 through a temporary file in the same folder, so that a
# reader sees the old file or the new one, never half of it.
write_atomically() {
    local target="$1" temporary
    temporary="$(mktemp "$(dirname "$target")/.$(basename "$target").XXXXXX")"
    cat >"$temporary"
    chmod 644 "$temporary"
    mv -f "$temporary" "$target"
}

# Print clamd's size limits and alert options for UPLOAD_MAX_SIZE_MB as
# clamd.conf lines. The private clamd gets them here, and deploy/install.sh
# writes them into the distribution's /etc/clamav/clamd.conf.
limit_lines() {
    local upload_mb="${UPLOAD_MAX_SIZE_MB:-200}"
    require_positive_int UPLOAD_MAX_SIZE_MB "$upload_mb"

    # The margin lets a file of exactly the upload limit through even when
    # the application rounds the limit differently. clamd reads "M" as MiB.
    local stream_mb=$(( upload_mb + upload_mb / 10 + 1 ))

    # MaxFileSize also applies to every object clamd extracts from a file,
    # such as an inflated PDF image stream, and a flat scanned page inflates a
    # lot (a 94 KB one-page scan became a 35 MB image). So it gets 4 times
    # the stream limit, below the 2 GiB that ClamAV 1.4 can scan at all
    # (clamd.conf(5), MaxFileSize).
    local file_mb=$(( stream_mb * 4 ))
    if (( file_mb > 2047 )); then
        file_mb=2047
    fi
    if (( stream_mb > file_mb )); then
        die "UPLOAD_MAX_SIZE_MB=$upload_mb is too large: clamd scans files below 2048 MiB only"
    fi
    # MaxScanSize counts a container plus everything extracted from it.
    local scan_mb=$(( file_mb * 2 ))
    if (( scan_mb > 4000 )); then
        scan_mb=4000
    fi

    cat <<EOF
# Limits: UPLOAD_MAX_SIZE_MB=$upload_mb.
StreamMaxLength ${stream_mb}M
MaxFileSize ${file_mb}M
MaxScanSize ${scan_mb}M
MaxRecursion 17
MaxFiles 10000
MaxScanTime 120000

# Without these, a file over a limit and an encrypted archive or PDF are
# reported as OK. With them, clamd reports Heuristics.Limits.Exceeded.* and
# Heuristics.Encrypted.*.
# NOTE: clamd 1.4.6 cuts a zip member over MaxFileSize to MaxFileSize and
# scans that part without an alert. A zip that inflates past MaxScanSize is
# still reported.
AlertExceedsMax yes
AlertEncrypted yes
AlertEncryptedArchive yes
AlertEncryptedDoc yes
EOF
}

write_configs() {
    local limits
    limits="$(limit_lines)" || exit 1

    mkdir -p "$clamav_dir" "$database_dir" "$temporary_dir" "$(dirname "$socket_path")"

    local tcp_lines="# No TCPSocket: clamd listens on the unix socket only."
    if [[ -n "$tcp_port" ]]; then
        tcp_lines="TCPSocket $tcp_port
TCPAddr 127.0.0.1"
    fi

    # No User line: clamd keeps running as the user who starts it.
    write_atomically "$clamd_conf" <<EOF
# Written by scripts/clamd.sh from the environment; edits are overwritten.
DatabaseDirectory $database_dir
TemporaryDirectory $temporary_dir
LocalSocket $socket_path
LocalSocketMode 660
FixStaleSocket yes
$tcp_lines
PidFile $pid_file
LogFile $clamd_log
LogTime yes
LogFileMaxSize 20M
LogRotate yes
SelfCheck 600

$limits
EOF

    write_atomically "$freshclam_conf" <<EOF
# Written by scripts/clamd.sh from the environment; edits are overwritten.
DatabaseDirectory $database_dir
DatabaseOwner $(id -un)
UpdateLogFile $freshclam_log
LogTime yes
DatabaseMirror database.clamav.net
ConnectTimeout 10
ReceiveTimeout 60
MaxAttempts 2
NotifyClamd $clamd_conf
EOF
}

has_official_signatures() {
    compgen -G "$database_dir/main.c[vl]d" >/dev/null && compgen -G "$database_dir/daily.c[vl]d" >/dev/null
}

# The suffixes are those clamd loads (CLI_DBEXT in libclamav/readdb.h,
# ClamAV 1.4), as in scanning/signatures.py.
has_any_signatures() {
    local file
    for file in "$database_dir"/*; do
        case "${file,,}" in
            *.db | *.hdb | *.hdu | *.fp | *.mdb | *.mdu | *.hsb | *.hsu | *.sfp | *.msb | *.msu | \
                *.ndb | *.ndu | *.ldb | *.ldu | *.sdb | *.zmd | *.rmd | *.pdb | *.gdb | *.wdb | \
                *.cbc | *.ftm | *.cfg | *.cvd | *.cld | *.cud | *.cdb | *.cat | *.crb | *.idb | \
                *.ioc | *.yar | *.yara | *.pwdb | *.ign | *.ign2 | *.imp)
                [[ -f "$file" ]] && return 0
                ;;
        esac
    done
    return 1
}

run_freshclam() {
    if [[ "${CLAMD_SKIP_FRESHCLAM:-0}" == "1" ]]; then
        log "CLAMD_SKIP_FRESHCLAM=1: not downloading official signatures"
        return 1
    fi
    local timeout_seconds="${FRESHCLAM_TIMEOUT_SECONDS:-300}"
    require_positive_int FRESHCLAM_TIMEOUT_SECONDS "$timeout_seconds"
    log "downloading official signatures into $database_dir (freshclam, at most ${timeout_seconds}s)"
    if timeout "$timeout_seconds" freshclam --config-file="$freshclam_conf" --stdout; then
        return 0
    fi
    log "freshclam failed; its log is $freshclam_log"
    return 1
}

remove_test_signatures() {
    rm -f "$database_dir/$TEST_SIGNATURE_BASENAME.hdb" "$database_dir/$TEST_SIGNATURE_BASENAME.ndb"
}

install_test_signatures() {
    # .ndb body signature NAME:TARGET:OFFSET:HEX. Target 0 is any file and
    # offset * is anywhere in it, so EICAR inside a container is found too.
    echo "DoclingService.Test.EICAR-Body:0:*:$EICAR_HEX" \
        | write_atomically "$database_dir/$TEST_SIGNATURE_BASENAME.ndb"

    # .hdb MD5 signatures MD5:SIZE:NAME for whole files.
    {
        echo "$EICAR_MD5:$EICAR_SIZE:DoclingService.Test.EICAR-MD5"
        if [[ -r "$TESTFILES_CLAM_EXE" ]]; then
            # The other samples in clamav-testfiles embed clam.exe, so this one
            # MD5 detects all of them.
            local md5 size
            md5="$(md5sum "$TESTFILES_CLAM_EXE" | cut -d' ' -f1)"
            size="$(stat -c %s "$TESTFILES_CLAM_EXE")"
            echo "$md5:$size:DoclingService.Test.ClamAV-TestFile"
        else
            log "clamav-testfiles is not installed; only EICAR signatures are added"
        fi
    } | write_atomically "$database_dir/$TEST_SIGNATURE_BASENAME.hdb"
}

print_test_signature_warning() {
    cat >&2 <<EOF

************************************************************************
*  WARNING: clamd has ONLY TEST SIGNATURES (EICAR, clamav-testfiles).  *
*  It detects no real malware. Official signatures could not be        *
*  downloaded; run 'scripts/clamd.sh prepare' again with internet      *
*  access. Production settings reject this database.                   *
*  Signature folder: $database_dir
************************************************************************

EOF
}

command_prepare() {
    write_configs
    log "wrote $clamd_conf and $freshclam_conf"

    run_freshclam || true

    if has_official_signatures; then
        remove_test_signatures
        log "official signatures present in $database_dir"
        return 0
    fi
    install_test_signatures
    print_test_signature_warning
}

# Print the pid from the pid file when that process is a running clamd.
running_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$pid_file")"
    [[ -n "$pid" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "clamd" ]] || return 1
    echo "$pid"
}

ping_clamd() {
    clamdscan --config-file="$clamd_conf" --ping 1 >/dev/null 2>&1
}

check_startable() {
    command -v clamd >/dev/null || die "clamd is not installed; install the Debian packages clamav-daemon and clamdscan"
    if ! has_any_signatures; then
        log "no signatures in $database_dir; running prepare first"
        command_prepare
        return 0
    fi
    if ! has_official_signatures; then
        print_test_signature_warning
    fi
}

command_start() {
    write_configs
    local pid
    if pid="$(running_pid)"; then
        log "clamd already runs (pid $pid, socket $socket_path)"
        return 0
    fi
    check_startable
    rm -f "$pid_file"

    local timeout_seconds="${CLAMD_START_TIMEOUT_SECONDS:-30}"
    require_positive_int CLAMD_START_TIMEOUT_SECONDS "$timeout_seconds"

    # clamd forks, and the parent exits once the child has loaded the
    # database and opened its socket.
    log "starting clamd (config $clamd_conf, log $clamd_log)"
    if ! clamd --config-file="$clamd_conf" </dev/null >>"$clamd_log" 2>&1; then
        tail -n 20 "$clamd_log" >&2 || true
        die "clamd failed to start; see $clamd_log"
    fi

    local deadline=$(( SECONDS + timeout_seconds ))
    until ping_clamd; do
        if (( SECONDS >= deadline )); then
            tail -n 20 "$clamd_log" >&2 || true
            die "clamd did not reply to PING on $socket_path within ${timeout_seconds}s; see $clamd_log"
        fi
        sleep 0.1
    done
    log "clamd runs (pid $(running_pid || echo unknown), socket $socket_path)"
}

command_run() {
    write_configs
    local pid
    if pid="$(running_pid)"; then
        die "clamd already runs (pid $pid); stop it with 'scripts/clamd.sh stop' first"
    fi
    check_startable
    log "running clamd in the foreground (config $clamd_conf, log $clamd_log)"
    exec clamd --foreground --config-file="$clamd_conf"
}

command_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "clamd is not running (no live clamd in $pid_file)"
        rm -f "$pid_file"
        return 0
    fi
    kill -TERM "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited >= 100 )); then
            log "clamd (pid $pid) did not exit 10s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$(( waited + 1 ))
    done
    rm -f "$pid_file"
    log "stopped clamd (pid $pid)"
}

command_limits() {
    limit_lines
}

command_status() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "clamd: not running (pid file $pid_file)"
        return 3
    fi
    # Report the socket of the running clamd, which may differ from the
    # environment of this call.
    socket_path="$(sed -n 's/^LocalSocket //p' "$clamd_conf")"
    if ping_clamd; then
        echo "clamd: running, pid $pid, socket $socket_path, replies to PING"
    else
        echo "clamd: running, pid $pid, socket $socket_path, does NOT reply to PING (still loading the database?)"
        return 1
    fi
    if has_official_signatures; then
        echo "signatures: official ($database_dir)"
    else
        echo "signatures: TEST ONLY ($database_dir)"
    fi
}

main() {
    local command="${1:-}"
    case "$command" in
        prepare | start | run | stop | status | limits) ;;
        *)
            echo "usage: scripts/clamd.sh prepare|start|run|stop|status|limits" >&2
            exit 2
            ;;
    esac
    resolve_paths
    "command_$command"
}

main "$@"
