"""Offline checks of what builds and ships the service: the Dockerfile (hadolint), the pinned
image requirements, the GitHub Actions workflows (actionlint, with shellcheck on their `run:`
steps), the shell scripts (shellcheck) and the YAML files (yamllint). The chart has
test_chart.py and test_chart_lifecycle.py.

Every check has a twin that breaks the checked file in a temporary copy and asserts that the
check fails: a check that cannot fail proves nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deploy_helpers import (
    CHART,
    DOCKERFILE,
    REQUIREMENTS,
    ROOT,
    SCRIPTS,
    VALUES_FILES,
    WORKFLOWS,
    load_yaml,
    output_of,
    requirement_lines,
    run,
    tool,
)

pytestmark = pytest.mark.integration

BASE_IMAGE_RE = re.compile(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}")
HASH_RE = re.compile(r"--hash=sha256:[0-9a-f]{64}")


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_hadolint_clean() -> None:
    result = run(tool("hadolint"), DOCKERFILE)
    assert result.returncode == 0, f"hadolint found problems in {DOCKERFILE}:\n{output_of(result)}"


def test_hadolint_fails_on_a_latest_base_image(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text, count = re.subn(
        r"^FROM python:\S+", "FROM python:latest", DOCKERFILE.read_text(), flags=re.MULTILINE
    )
    assert count == 2, "the Dockerfile should have two stages on the pinned python base"
    broken.write_text(text)
    result = run(tool("hadolint"), broken)
    assert result.returncode != 0, f"hadolint accepted FROM python:latest:\n{output_of(result)}"
    assert "DL3007" in result.stdout, output_of(result)


def test_dockerfile_has_what_the_image_needs() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2, "multi-stage build expected"
    for base in stages:
        assert BASE_IMAGE_RE.fullmatch(base), (
            f"base image {base} is not a slim Python pinned by tag and digest"
        )
    assert len(set(stages)) == 1, "both stages on one base: the venv's interpreter path must be valid"
    name, digest = stages[0].split("@")
    assert f'org.opencontainers.image.base.name="docker.io/library/{name}"' in text
    assert f'org.opencontainers.image.base.digest="{digest}"' in text, "the base labels name the pinned base"
    assert re.search(r"pip .*install .*--require-hashes -r /tmp/requirements\.txt", text), (
        "the pinned requirements must be installed in hash-checking mode"
    )
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001", final, flags=re.MULTILINE), (
        "the final stage must run as the non-root uid"
    )
    assert "EXPOSE 8000" in final
    assert "HEALTHCHECK" in final
    assert 'ENTRYPOINT ["counter"]' in final
    assert 'CMD ["serve"]' in final
    for label in ("title", "source", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in final, f"OCI label {label} missing"
    assert "requirements.txt" in text
    assert "--no-deps" in text
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == {"deploy/docker/requirements.txt", "pyproject.toml", "README.md", "src"}, (
        f"the image installs the service alone, from its wheel: it copies {sorted(sources)}"
    )
    assert not re.search(r"apt-get install|gcc|build-essential", final), "no build tools in the final stage"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*", "the build context must be an allow-list: everything out, then what is needed"
    for needed in ("!pyproject.toml", "!README.md", "!src/", "!deploy/docker/requirements.txt"):
        assert needed in lines, f".dockerignore must let {needed[1:]} into the build context"
    let_in = [line for line in lines if line.startswith("!")]
    for kept_out in ("tools", "tests"):
        assert not [line for line in let_in if line[1:].startswith(kept_out)], f"{kept_out}/ must stay out"


def test_requirements_pin_every_runtime_dependency() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for line, options in requirement_lines(REQUIREMENTS.read_text()):
        requirement = Requirement(line)
        assert len(requirement.specifier) == 1, f"{line!r} is not pinned"
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line!r} is not pinned with =="
        assert options, f"{line!r} has no --hash: pip install --require-hashes would refuse the file"
        assert all(HASH_RE.fullmatch(option) for option in options), f"{line!r}: {options}"
        pins[canonicalize_name(requirement.name)] = specifier.version
    assert "counter-web-server" not in pins, "the project itself is installed from its wheel, not pinned"
    for dependency in dependencies:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{requirement.name} is a runtime dependency but is not pinned in {REQUIREMENTS}: "
            "run deploy/scripts/freeze-requirements.sh"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{REQUIREMENTS} pins {name}=={pins[name]}, outside {requirement.specifier} from pyproject.toml: "
            "run deploy/scripts/freeze-requirements.sh"
        )


def test_compiled_dependencies_carry_a_hash_for_every_platform_file() -> None:
    # pip-compile lists the hash of every file of a release: a compiled package (a wheel per
    # platform) has several, so linux/arm64 finds its wheel as well as linux/amd64.
    hashes = {
        Requirement(line).name.lower(): len(options)
        for line, options in requirement_lines(REQUIREMENTS.read_text())
    }
    for compiled in ("msgspec", "hiredis", "httptools", "uvloop", "dependency-injector", "pyyaml"):
        assert hashes[compiled] >= 4, f"{compiled} has {hashes[compiled]} hashes: one platform's files only?"


def test_requirements_check_catches_a_missing_hash_and_a_loose_pin() -> None:
    text = (
        "msgspec==0.22.0 \\\n    --hash=sha256:" + "a" * 64 + "\nredis>=8\nhiredis==3.5.0\n    # via redis\n"
    )
    entries = requirement_lines(text)
    assert entries == [
        ("msgspec==0.22.0", ["--hash=sha256:" + "a" * 64]),
        ("redis>=8", []),
        ("hiredis==3.5.0", []),
    ]
    assert len(Requirement(entries[1][0]).specifier) == 1
    assert next(iter(Requirement(entries[1][0]).specifier)).operator != "=="
    assert not entries[2][1], "a pin without a hash is seen as such"


def download_for(platform: str, requirements: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """pip download, in hash-checking mode, of the wheels the image's pip would pick on `platform`
    (Debian bookworm: glibc 2.36), from PyPI alone: no local wheel directory or mirror."""
    tags = [
        *(f"manylinux_2_{minor}_{platform}" for minor in (17, 28, 31, 34, 36)),
        f"manylinux2014_{platform}",
        "any",
    ]
    abis = ("cp311", "abi3", "none")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--require-hashes", "--no-deps", "--only-binary=:all:", "--dest", str(target),
            "--python-version", "3.11", "--implementation", "cp",
            *(option for abi in abis for option in ("--abi", abi)),
            *(option for tag in tags for option in ("--platform", tag)),
            "--requirement", str(requirements),
        ],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["x86_64", "aarch64"])
def test_every_pin_has_a_wheel_whose_hash_is_listed_for_both_image_platforms(
    platform: str, tmp_path: Path
) -> None:
    # What `pip install --require-hashes` in the image will do on linux/amd64 and linux/arm64.
    result = download_for(platform, REQUIREMENTS, tmp_path / "wheels")
    assert result.returncode == 0, f"hash-checked download for {platform} failed:\n{output_of(result)}"
    assert len(list((tmp_path / "wheels").glob("*.whl"))) == len(requirement_lines(REQUIREMENTS.read_text()))


def test_hash_checked_download_fails_on_a_hash_that_is_not_the_file(tmp_path: Path) -> None:
    wrong = tmp_path / "requirements.txt"
    wrong.write_text("durationpy==0.11 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    result = download_for("x86_64", wrong, tmp_path / "wheels")
    assert result.returncode != 0, output_of(result)
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr, output_of(result)


# --------------------------------------------------------------------------- workflows


def workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def test_workflows_are_actionlint_clean() -> None:
    tool("shellcheck")  # actionlint checks the `run:` scripts with it
    result = run(tool("actionlint"), *workflow_files())
    assert result.returncode == 0, f"actionlint found problems:\n{output_of(result)}"


def test_actionlint_fails_on_an_undefined_job_output(tmp_path: Path) -> None:
    workflow = WORKFLOWS / "ci-cd.yml"
    reference = "needs.determine-environment-and-tag.outputs.image_tag"
    text = workflow.read_text()
    assert reference in text
    broken = tmp_path / ".github" / "workflows" / "ci-cd.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(reference, "needs.determine-environment-and-tag.outputs.image_tga", 1))
    result = run(tool("actionlint"), broken, cwd=tmp_path)
    assert result.returncode != 0, f"actionlint accepted an undefined job output:\n{output_of(result)}"
    assert "image_tga" in result.stdout, output_of(result)


def test_pipeline_has_the_jobs_and_guards_it_needs() -> None:
    # The image's way through the jobs, pins, triggers and credentials: test_pipeline.py.
    jobs = load_yaml(WORKFLOWS / "ci-cd.yml")["jobs"]
    expected_jobs = {
        "determine-environment-and-tag",
        "lint",
        "test",
        "build",
        "package-chart",
        "e2e-kind",
        "publish",
        "deploy",
    }
    assert set(jobs) == expected_jobs
    deploy = jobs["deploy"]
    assert deploy["environment"]["name"] == "${{ needs.determine-environment-and-tag.outputs.environment }}"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "environment" in deploy["concurrency"]["group"]
    assert deploy["if"].endswith("needs.determine-environment-and-tag.outputs.deploy == 'true'")
    assert jobs["publish"]["permissions"] == {"contents": "read", "packages": "write"}


# --------------------------------------------------------------------------- shell scripts


def shell_scripts() -> list[Path]:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert scripts, f"no shell script in {SCRIPTS}"
    return scripts


def test_shell_scripts_are_shellcheck_clean() -> None:
    result = run(tool("shellcheck"), "--external-sources", *shell_scripts())
    assert result.returncode == 0, f"shellcheck found problems:\n{output_of(result)}"


def test_shell_scripts_are_strict_and_executable() -> None:
    for script in shell_scripts():
        if script.name == "lib.sh":  # sourced, not run
            continue
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), f"{script.name}: bash shebang expected"
        assert "set -euo pipefail" in text or script.name == "kind-diagnostics.sh", (
            f"{script.name}: not strict"
        )
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_shellcheck_fails_on_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\ndir=$1\nrm -rf $dir/*\nif [ $dir == "" ]; then echo empty; fi\n')
    result = run(tool("shellcheck"), bad)
    assert result.returncode != 0, f"shellcheck accepted an unquoted variable:\n{output_of(result)}"
    assert "SC2086" in result.stdout, output_of(result)


def test_yaml_files_are_yamllint_clean() -> None:
    config = (
        "{extends: default, rules: {line-length: {max: 140}, truthy: {check-keys: false},"
        " document-start: disable}}"
    )
    targets = [*workflow_files(), *VALUES_FILES.values(), CHART / "Chart.yaml", ROOT / "deploy/kind"]
    result = run(tool("yamllint"), "--strict", "-d", config, *targets)
    assert result.returncode == 0, f"yamllint found problems:\n{output_of(result)}"
