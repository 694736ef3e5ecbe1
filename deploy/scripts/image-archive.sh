#!/usr/bin/env bash
# What the pipeline does with the one image it builds: an OCI archive (linux/amd64 + linux/arm64,
# SBOM and provenance attestations) that every later job checks against the build's digest.
#
#   deploy/scripts/image-archive.sh verify    ARCHIVE DIGEST
#   deploy/scripts/image-archive.sh kind-load ARCHIVE DIGEST IMAGE [CLUSTER]
#   deploy/scripts/image-archive.sh promote   ARCHIVE DIGEST REPOSITORY:TAG
#
#   verify     the archive's index has DIGEST, an image per platform and their attestations
#   kind-load  verify, then load its linux/amd64 image into the kind nodes as IMAGE (repository:tag)
#              and check that the node holds exactly that image's configuration
#   promote    verify, push the archive unchanged (every manifest, attestations included,
#              `--preserve-digests` refuses any rewrite) and check the registry answers DIGEST;
#              writes digest=DIGEST to $GITHUB_OUTPUT when set
#
# Needs skopeo (in CI it is installed when missing) and python3; kind-load also kind and docker.
# Registry credentials are the ones `docker login` stored.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

platforms=(linux/amd64 linux/arm64)
checker="${repo_root}/deploy/scripts/check_image_index.py"

usage() {
    die "usage: $0 verify ARCHIVE DIGEST | kind-load ARCHIVE DIGEST IMAGE [CLUSTER] | promote ARCHIVE DIGEST REPOSITORY:TAG"
}

ensure_skopeo() {
    command -v skopeo >/dev/null 2>&1 && return 0
    [[ "${CI:-}" == "true" ]] || die "'skopeo' is not installed"
    log "installing skopeo"
    sudo apt-get update -qq && sudo apt-get install --yes --no-install-recommends skopeo >/dev/null
}

# The index from SOURCE (a skopeo reference), checked against DIGEST, platforms and attestations.
check_index() {
    local source="$1" digest="$2" checks=()
    for platform in "${platforms[@]}"; do
        checks+=(--platform "${platform}")
    done
    skopeo inspect --raw "${source}" | python3 "${checker}" --digest "${digest}" "${checks[@]}" --attestations >/dev/null
}

verify() {
    local archive="$1" digest="$2"
    [[ -f "${archive}" ]] || die "no image archive at ${archive}"
    [[ "${digest}" =~ ^sha256:[0-9a-f]{64}$ ]] || die "'${digest}' is not a sha256 digest"
    ensure_skopeo
    check_index "oci-archive:${archive}" "${digest}"
    log "${archive} is ${digest}: ${platforms[*]}, each with its SBOM and provenance"
}

kind_load() {
    local archive="$1" digest="$2" image="$3" cluster="${4:-${KIND_CLUSTER:-counter}}" workdir config node_config
    [[ "${image}" == *:* ]] || die "IMAGE must be repository:tag, got '${image}'"
    verify "${archive}" "${digest}"
    require kind docker
    workdir="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: the trap runs after the local is gone
    trap "rm -rf '${workdir}'" EXIT
    # The nodes are linux/amd64: copy that image alone, as a docker archive kind can load.
    skopeo copy --quiet --override-os linux --override-arch amd64 \
        "oci-archive:${archive}" "docker-archive:${workdir}/amd64.tar:${image}"
    config="sha256:$(skopeo inspect --config --raw --override-os linux --override-arch amd64 "oci-archive:${archive}" | sha256sum | cut -d' ' -f1)"
    kind load image-archive "${workdir}/amd64.tar" --name "${cluster}"
    node_config="$(docker exec "${cluster}-control-plane" crictl inspecti --output json "${image}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["status"]["id"])')"
    [[ "${node_config}" == "${config}" ]] \
        || die "kind holds ${image} with configuration ${node_config}, not ${config} of ${digest}"
    log "kind cluster '${cluster}' holds ${image}: the linux/amd64 image of ${digest} (configuration ${config})"
}

promote() {
    local archive="$1" digest="$2" target="$3"
    [[ "${target}" == */*:* ]] || die "the target must be registry/repository:tag, got '${target}'"
    verify "${archive}" "${digest}"
    skopeo copy --quiet --all --preserve-digests "oci-archive:${archive}" "docker://${target}"
    check_index "docker://${target}" "${digest}"
    log "pushed ${target} = ${target%:*}@${digest}"
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        echo "digest=${digest}" >>"${GITHUB_OUTPUT}"
    fi
}

[[ $# -ge 1 ]] || usage
command="$1"
shift
case "${command}" in
    verify) [[ $# -eq 2 ]] || usage; verify "$@" ;;
    kind-load) [[ $# -eq 3 || $# -eq 4 ]] || usage; kind_load "$@" ;;
    promote) [[ $# -eq 3 ]] || usage; promote "$@" ;;
    *) usage ;;
esac
