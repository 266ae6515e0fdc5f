# Sourced by the scripts: export the variables in .env (if present) without
# overriding ones already set in the environment, and set the defaults the
# scripts share with the Django settings.
repo_root="${repo_root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
if [ -f "$repo_root/.env" ]; then
    while IFS='=' read -r name value; do
        case "$name" in ''|\#*) continue ;; esac
        if [ -z "${!name+x}" ] && [ -n "$value" ]; then
            export "$name=$value"
        fi
    done < "$repo_root/.env"
fi
export DATA_ROOT="${DATA_ROOT:-$repo_root/var}"
case "$DATA_ROOT" in /*) ;; *) DATA_ROOT="$repo_root/${DATA_ROOT#./}" ;; esac
export PORT="${PORT:-8000}"
