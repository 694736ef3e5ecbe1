#!/usr/bin/env bash
# Deploy a packaged chart to the EKS cluster of an environment (the pipeline's deploy job).
#
#   deploy/scripts/helm-deploy.sh ENVIRONMENT CHART
#
#   ENVIRONMENT   dev | preprod | prod: selects deploy/helm/counter/values-ENVIRONMENT.yaml
#   CHART         the chart archive (.tgz) packaged by the pipeline, or a chart directory
#
# Environment: AWS_REGION, EKS_CLUSTER_NAME (required; AWS credentials as the AWS CLI reads them),
# IMAGE (repository, e.g. ghcr.io/owner/repo), IMAGE_TAG, IMAGE_DIGEST (optional, sha256:...),
# RELEASE (counter), NAMESPACE (counter-ENVIRONMENT), HELM_TIMEOUT (10m).
#
# `--atomic` rolls the release back if it does not become ready in time; the counter ConfigMap is
# never replaced (no --force), so a rollback cannot lose a count either.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 ENVIRONMENT CHART"
environment="$1"
chart="$2"
case "${environment}" in
    dev | preprod | prod) ;;
    *) die "unknown environment '${environment}': expected dev, preprod or prod" ;;
esac
values="${repo_root}/deploy/helm/counter/values-${environment}.yaml"
[[ -f "${values}" ]] || die "no values file ${values}"
[[ -e "${chart}" ]] || die "no chart at ${chart}"
: "${AWS_REGION:?set AWS_REGION}" "${EKS_CLUSTER_NAME:?set EKS_CLUSTER_NAME}"
: "${IMAGE:?set IMAGE (the image repository)}" "${IMAGE_TAG:?set IMAGE_TAG}"

release="${RELEASE:-counter}"
namespace="${NAMESPACE:-counter-${environment}}"
timeout="${HELM_TIMEOUT:-10m}"
require aws kubectl
helm="$(find_helm)"

# A kubeconfig of our own: never touch the runner's or a developer's default one.
KUBECONFIG="$(mktemp)"
export KUBECONFIG
trap 'rm -f "${KUBECONFIG}"' EXIT
aws eks update-kubeconfig --name "${EKS_CLUSTER_NAME}" --region "${AWS_REGION}" --kubeconfig "${KUBECONFIG}" >/dev/null
log "deploying ${IMAGE}:${IMAGE_TAG}${IMAGE_DIGEST:+@${IMAGE_DIGEST}} to ${EKS_CLUSTER_NAME} (${AWS_REGION}), namespace ${namespace}"

image_args=(--set "image.repository=${IMAGE}" --set "image.tag=${IMAGE_TAG}")
if [[ -n "${IMAGE_DIGEST:-}" ]]; then
    image_args+=(--set "image.digest=${IMAGE_DIGEST}")
fi

"${helm}" upgrade --install "${release}" "${chart}" \
    --namespace "${namespace}" --create-namespace \
    --values "${values}" "${image_args[@]}" \
    --atomic --wait --timeout "${timeout}" --history-max 10

"${helm}" test "${release}" --namespace "${namespace}" --logs --timeout 3m
"${helm}" status "${release}" --namespace "${namespace}"
