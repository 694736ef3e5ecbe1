#!/usr/bin/env bash
# Create (or reuse) the kind cluster of deploy/kind/kind-config.yaml and write its kubeconfig.
#
#   deploy/scripts/kind-up.sh [KUBECONFIG_OUT]      (default: .tools/kind-kubeconfig)
#
# The kubeconfig is what the ConfigMap integration tests take as COUNTER_TEST_KUBECONFIG.
# Needs: docker (a running engine) and kind.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster="${KIND_CLUSTER:-counter}"
config="${repo_root}/deploy/kind/kind-config.yaml"
kubeconfig_out="${1:-${repo_root}/.tools/kind-kubeconfig}"

for tool in docker kind kubectl; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
        echo "kind-up: '${tool}' is not installed" >&2
        exit 1
    fi
done

if kind get clusters 2>/dev/null | grep -qx "${cluster}"; then
    echo "kind-up: cluster '${cluster}' already exists"
else
    kind create cluster --name "${cluster}" --config "${config}" --wait 120s
fi

mkdir -p "$(dirname "${kubeconfig_out}")"
kind get kubeconfig --name "${cluster}" >"${kubeconfig_out}"
chmod 600 "${kubeconfig_out}"
kubectl --kubeconfig "${kubeconfig_out}" wait --for=condition=Ready node --all --timeout=120s
echo "kind-up: kubeconfig written to ${kubeconfig_out}"
echo "kind-up: run the ConfigMap tests with: COUNTER_TEST_KUBECONFIG=${kubeconfig_out} .venv/bin/pytest tests/integration -k configmap"
