#!/usr/bin/env bash
# Regenerate deploy/docker/requirements.txt: the pinned runtime dependencies of the image.
#
# Installs the project's [project.dependencies] (from pyproject.toml, not the project itself)
# into a throw-away virtual environment and writes `pip freeze` with a header. Run it with the
# Python minor version of the image (3.11) after changing the dependencies in pyproject.toml:
#
#   deploy/scripts/freeze-requirements.sh            # uses python3.11, else python3
#   PYTHON=/usr/bin/python3.11 deploy/scripts/freeze-requirements.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
output="${repo_root}/deploy/docker/requirements.txt"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"

version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "${version}" != "3.11" ]]; then
    echo "freeze-requirements: ${python} is Python ${version}; the image runs 3.11 (set PYTHON)" >&2
    exit 1
fi

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

"${python}" - "${repo_root}/pyproject.toml" >"${workdir}/direct.txt" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as source:
    for requirement in tomllib.load(source)["project"]["dependencies"]:
        print(requirement)
PY

"${python}" -m venv "${workdir}/venv"
"${workdir}/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "${workdir}/direct.txt"

{
    echo "# Pinned runtime dependencies of the container image (deploy/docker/Dockerfile)."
    echo "# Generated from [project.dependencies] in pyproject.toml with Python ${version}; do not edit."
    echo "# Regenerate after changing the dependencies: deploy/scripts/freeze-requirements.sh"
    echo "# (a clean virtual environment, pip install of those dependencies, pip freeze without the project)."
    "${workdir}/venv/bin/python" -m pip freeze --disable-pip-version-check --exclude counter-web-server
} >"${output}"

echo "freeze-requirements: wrote ${output}"
