#!/usr/bin/env bash
# Install the chart into the kind cluster and prove it works:
#   1. load the image into the kind nodes: the pipeline's own build (IMAGE_ARCHIVE, checked
#      against IMAGE_DIGEST), or else one built here with docker build;
#   2. helm upgrade --install with deploy/kind/values-kind.yaml, then `helm test`;
#   3. smoke-test POST and GET through the Service (NodePort on 127.0.0.1:18080);
#   4. upgrade the release with a forced rollout, then uninstall and reinstall it, and check
#      after each step that the counts in the ConfigMap were kept.
#
#   deploy/scripts/kind-deploy.sh
#
# Environment: IMAGE (default counter-web-server:kind), the name the image gets in the nodes;
# IMAGE_ARCHIVE and IMAGE_DIGEST, the OCI archive the pipeline built and its digest (CI: nothing
# is built here); SKIP_BUILD=1 when IMAGE is in the local docker engine already; CHART, a chart
# package or directory (default: deploy/helm/counter; CI: the package it deploys); KIND_CLUSTER
# (counter), RELEASE (counter), NAMESPACE (counter), HELM (path to helm), BASE_URL
# (http://127.0.0.1:18080). Run deploy/scripts/kind-up.sh first.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image="${IMAGE:-counter-web-server:kind}"
cluster="${KIND_CLUSTER:-counter}"
release="${RELEASE:-counter}"
namespace="${NAMESPACE:-counter}"
base_url="${BASE_URL:-http://127.0.0.1:18080}"
context="kind-${cluster}"
chart="${CHART:-${repo_root}/deploy/helm/counter}"
smoke="${repo_root}/deploy/scripts/smoke-test.sh"

require docker kind kubectl curl python3
helm="$(find_helm)"
repository="${image%:*}"
tag="${image##*:}"
[[ "${repository}" != "${image}" ]] || die "IMAGE must be repository:tag, got '${image}'"

kubectl_() { kubectl --context "${context}" --namespace "${namespace}" "$@"; }
helm_() { "${helm}" --kube-context "${context}" --namespace "${namespace}" "$@"; }

install_release() {
    helm_ upgrade --install "${release}" "${chart}" --create-namespace \
        --values "${repo_root}/deploy/kind/values-kind.yaml" \
        --set "image.repository=${repository}" --set "image.tag=${tag}" \
        --wait --timeout 5m "$@"
}

configmap_name() {
    kubectl_ get configmap --selector "app.kubernetes.io/instance=${release},app.kubernetes.io/component=store" \
        --output jsonpath='{.items[0].metadata.name}'
}

expect_count() {
    local name="$1" expected="$2" when="$3" actual
    actual="$("${smoke}" "${base_url}" --count "${name}")"
    [[ "${actual}" == "${expected}" ]] || die "counter '${name}' is ${actual} ${when}, expected ${expected}: a count was lost"
    log "counter '${name}' is still ${actual} ${when}"
}

[[ -e "${chart}" ]] || die "no chart at ${chart}"
if [[ -n "${IMAGE_ARCHIVE:-}" ]]; then
    : "${IMAGE_DIGEST:?set IMAGE_DIGEST, the digest the build reported for IMAGE_ARCHIVE}"
    "${repo_root}/deploy/scripts/image-archive.sh" kind-load "${IMAGE_ARCHIVE}" "${IMAGE_DIGEST}" "${image}" "${cluster}"
else
    if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
        log "building ${image}"
        docker build --file "${repo_root}/deploy/docker/Dockerfile" --tag "${image}" \
            --build-arg "REVISION=$(git -C "${repo_root}" rev-parse HEAD 2>/dev/null || echo unknown)" \
            "${repo_root}"
    fi
    log "loading ${image} into kind cluster '${cluster}'"
    kind load docker-image "${image}" --name "${cluster}"
fi

log "installing release '${release}' into namespace '${namespace}'"
install_release
helm_ test "${release}" --logs --timeout 2m

"${smoke}" "${base_url}"

# The counts must survive what operators do to a release.
"${smoke}" "${base_url}" --count lifecycle >/dev/null
for _ in 1 2 3; do
    curl --silent --show-error --fail --max-time 10 --output /dev/null -X POST "${base_url}/counters/lifecycle"
done
kept="$("${smoke}" "${base_url}" --count lifecycle)"
store="$(configmap_name)"
[[ -n "$(kubectl_ get configmap "${store}" --output jsonpath='{.data.lifecycle}')" ]] \
    || die "ConfigMap ${store} holds no key 'lifecycle' after the increments"

log "upgrading with a forced rollout of every pod"
install_release --set-string "podAnnotations.counter\.dev/rollout=$(date +%s)"
expect_count lifecycle "${kept}" "after helm upgrade"

log "uninstalling: the ConfigMap must stay (helm.sh/resource-policy=keep)"
helm_ uninstall "${release}" --wait --timeout 2m
kubectl_ get configmap "${store}" >/dev/null || die "ConfigMap ${store} was deleted by helm uninstall"

log "reinstalling: the release adopts the kept ConfigMap"
install_release
expect_count lifecycle "${kept}" "after helm uninstall and install"
[[ "$(kubectl_ get configmap "${store}" --output jsonpath='{.metadata.annotations.helm\.sh/resource-policy}')" == "keep" ]] \
    || die "ConfigMap ${store} lost its helm.sh/resource-policy=keep annotation"

"${smoke}" "${base_url}"
log "OK: ${image} runs on kind; counts survive upgrade, uninstall and reinstall"
