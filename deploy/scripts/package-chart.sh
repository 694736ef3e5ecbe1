#!/usr/bin/env bash
# Package the chart with the pipeline's versions (deploy/scripts/publish-chart.sh pushes the package).
#
#   deploy/scripts/package-chart.sh OUT_DIR
#
# Environment:
#   CHART_VERSION   SemVer version of the package (detect_env.py: X.Y.Z, X.Y.Z-rc.N or 0.0.0-<tag>)
#   APP_VERSION     the image tag the chart deploys by default
#   HELM            path to helm
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || die "usage: $0 OUT_DIR"
out_dir="$1"
: "${CHART_VERSION:?set CHART_VERSION}" "${APP_VERSION:?set APP_VERSION}"
helm="$(find_helm)"
chart="${repo_root}/deploy/helm/counter"

mkdir -p "${out_dir}"
"${helm}" lint --strict "${chart}"
"${helm}" package "${chart}" --version "${CHART_VERSION}" --app-version "${APP_VERSION}" --destination "${out_dir}"
package="${out_dir}/counter-${CHART_VERSION}.tgz"
[[ -f "${package}" ]] || die "helm package did not write ${package}"
log "packaged ${package}"

