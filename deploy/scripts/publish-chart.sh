#!/usr/bin/env bash
# Push a chart package, the one the kind job installed, to an OCI registry unchanged.
#
#   deploy/scripts/publish-chart.sh PACKAGE OCI_REPOSITORY
#
#   PACKAGE         counter-<version>.tgz from deploy/scripts/package-chart.sh
#   OCI_REPOSITORY  e.g. oci://ghcr.io/owner/repo/charts
#
# Environment: REGISTRY_USERNAME, REGISTRY_PASSWORD (optional: `helm registry login` first), HELM.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 PACKAGE OCI_REPOSITORY"
package="$1"
repository="$2"
[[ -f "${package}" ]] || die "no chart package at ${package}"
[[ "${repository}" == oci://* ]] || die "OCI_REPOSITORY must start with oci://, got '${repository}'"
helm="$(find_helm)"

if [[ -n "${REGISTRY_PASSWORD:-}" ]]; then
    registry="${repository#oci://}"
    registry="${registry%%/*}"
    printf '%s' "${REGISTRY_PASSWORD}" |
        "${helm}" registry login "${registry}" --username "${REGISTRY_USERNAME:?set REGISTRY_USERNAME}" --password-stdin
fi
"${helm}" push "${package}" "${repository}"
log "pushed $(basename "${package}") to ${repository}"
