# Shared helpers for the deployment scripts (sourced, not run).
# shellcheck shell=bash

# The repository root, whatever the current directory.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export repo_root

log() {
    echo "$(basename "$0"): $*" >&2
}

die() {
    log "error: $*"
    exit 1
}

require() {
    local tool
    for tool in "$@"; do
        command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is not installed"
    done
}

# The helm binary: $HELM, else helm on PATH, else .tools/helm (deploy/scripts/install-helm.sh).
find_helm() {
    if [[ -n "${HELM:-}" ]]; then
        echo "${HELM}"
    elif command -v helm >/dev/null 2>&1; then
        command -v helm
    elif [[ -x "${repo_root}/.tools/helm" ]]; then
        echo "${repo_root}/.tools/helm"
    else
        die "no helm found: install it, or run deploy/scripts/install-helm.sh"
    fi
}
