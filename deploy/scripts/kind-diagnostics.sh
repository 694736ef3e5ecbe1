#!/usr/bin/env bash
# Print what is needed to understand a failed kind deployment (CI runs it on failure).
#   deploy/scripts/kind-diagnostics.sh
# Environment: KIND_CLUSTER (counter), NAMESPACE (counter), RELEASE (counter).
set -uo pipefail

cluster="${KIND_CLUSTER:-counter}"
namespace="${NAMESPACE:-counter}"
release="${RELEASE:-counter}"
context="kind-${cluster}"

section() {
    printf '\n===== %s =====\n' "$*"
}

section "nodes"
kubectl --context "${context}" get nodes --output wide
section "resources in ${namespace}"
kubectl --context "${context}" --namespace "${namespace}" get all,configmaps,roles,rolebindings,pdb,hpa --output wide
section "pods"
kubectl --context "${context}" --namespace "${namespace}" describe pods --selector "app.kubernetes.io/instance=${release}"
section "logs"
kubectl --context "${context}" --namespace "${namespace}" logs --selector "app.kubernetes.io/instance=${release}" \
    --all-containers --prefix --tail 200
section "events"
kubectl --context "${context}" --namespace "${namespace}" get events --sort-by .lastTimestamp
exit 0
