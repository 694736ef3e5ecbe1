#!/usr/bin/env bash
# Regenerate deploy/docker/requirements.txt: the pinned, hash-checked runtime dependencies of the image.
#
# pip-compile (pip-tools) resolves the project's [project.dependencies] (from pyproject.toml, not the
# project itself) for the image's Python (3.11) and writes every distribution with the sha256 of
# each of its files on PyPI, so that `pip install --require-hashes` accepts the same release on
# linux/amd64 and linux/arm64 and nothing else. The pins already in the file are kept unless
# UPGRADE=1 (then every package moves to its newest allowed release). Run it after changing the
# dependencies in pyproject.toml:
#
#   deploy/scripts/freeze-requirements.sh            # uses python3.11, else python3
#   PYTHON=/usr/bin/python3.11 UPGRADE=1 deploy/scripts/freeze-requirements.sh
#
# Environment: PYTHON, UPGRADE, INDEX_URL (https://pypi.org/simple: its JSON API lists the hashes
# of every file of a release, which another index may not).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
output="${repo_root}/deploy/docker/requirements.txt"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
index_url="${INDEX_URL:-https://pypi.org/simple}"
pip_tools="pip-tools==7.6.2"

version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "${version}" != "3.11" ]]; then
    echo "freeze-requirements: ${python} is Python ${version}; the image runs 3.11 (set PYTHON)" >&2
    exit 1
fi

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

# Only the index: no pip configuration, local wheel directories or constraints of this machine
# may leak into the pins or the hashes.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_INDEX_URL PIP_NO_INDEX

"${python}" - "${repo_root}/pyproject.toml" >"${workdir}/requirements.in" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as source:
    for requirement in tomllib.load(source)["project"]["dependencies"]:
        print(requirement)
PY

"${python}" -m venv "${workdir}/venv"
"${workdir}/venv/bin/python" -m pip install --quiet --disable-pip-version-check --index-url "${index_url}" "${pip_tools}"

compiled="${workdir}/requirements.txt"
upgrade=()
if [[ "${UPGRADE:-0}" == "1" ]]; then
    upgrade=(--upgrade)
elif [[ -f "${output}" ]]; then
    cp "${output}" "${compiled}"  # pip-compile keeps the pins it finds in its output file
fi
"${workdir}/venv/bin/pip-compile" --quiet --generate-hashes --strip-extras --no-header --no-emit-index-url \
    --index-url "${index_url}" "${upgrade[@]}" --output-file "${compiled}" "${workdir}/requirements.in"

{
    echo "# Pinned runtime dependencies of the container image (deploy/docker/Dockerfile), installed"
    echo "# with pip install --require-hashes: every file of each release on PyPI has its sha256 here."
    echo "# Generated from [project.dependencies] in pyproject.toml with Python ${version}; do not edit."
    echo "# Regenerate after changing the dependencies: deploy/scripts/freeze-requirements.sh"
    # pip-compile names its input by its temporary path: name the dependencies' real home instead,
    # so that regenerating the file changes only what really changed.
    sed "s|-r ${workdir}/requirements.in|pyproject.toml [project.dependencies]|" "${compiled}"
} >"${output}"

echo "freeze-requirements: wrote ${output}"
