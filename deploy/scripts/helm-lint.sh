#!/usr/bin/env bash
# `helm lint --strict` the chart once per values file: the defaults, each environment, and kind.
#   deploy/scripts/helm-lint.sh
# Environment: HELM (path to helm).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

helm="$(find_helm)"
chart="${repo_root}/deploy/helm/counter"
values_files=(
    "${chart}/values.yaml"
    "${chart}/values-dev.yaml"
    "${chart}/values-preprod.yaml"
    "${chart}/values-prod.yaml"
    "${repo_root}/deploy/kind/values-kind.yaml"
)

for values in "${values_files[@]}"; do
    log "helm lint --strict with ${values#"${repo_root}/"}"
    "${helm}" lint --strict "${chart}" --values "${values}"
done
