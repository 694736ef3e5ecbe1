"""What ships and what stays behind: the service's wheel holds the service alone and serves from a
virtual environment of its own; the Kubernetes API emulator is a distribution of its own that
declares what it imports; `make run` installs no test tool; a unit run loads no integration fixture.

Every check has a twin that feeds it a broken input and asserts that it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deploy_helpers import requirement_lines
from tests.imports import imported_modules
from tests.integration.server_process import free_port, stop

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = ROOT / "tools" / "kube-emulator"
REQUIREMENTS = ROOT / "deploy" / "docker" / "requirements.txt"
SERVICE_PACKAGES = ("domain", "adapters", "entrypoints")


def run(*args: str | Path, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def build_context(target: Path) -> Path:
    """What the Dockerfile builds the wheel from (.dockerignore's allow-list), copied: building in
    the working tree would write build/ and egg-info there."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for licence in ROOT.glob("LICENSE*"):
        shutil.copy2(licence, target / licence.name)
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return target


def build_wheel(source: Path, out: Path) -> Path:
    # Build isolation: the build backend comes from the index (setuptools>=77), not from the venv.
    result = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, source)
    assert result.returncode == 0, f"pip wheel failed for {source}:\n{output_of(result)}"
    (wheel,) = out.glob("*.whl")
    return wheel


def unexpected_in_wheel(wheel: Path, packages: tuple[str, ...]) -> list[str]:
    """Files of the wheel outside its packages and its .dist-info."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    allowed = (*(f"{package}/" for package in packages), f"{wheel.name.split('-')[0]}-")
    return [name for name in names if not name.startswith(allowed)]


def console_scripts(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [name for name in archive.namelist() if name.endswith("/entry_points.txt")]
        text = archive.read(entry_points).decode()
    section = text.split("[console_scripts]", 1)[1].split("\n[", 1)[0]
    return sorted(line.split("=")[0].strip() for line in section.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def service_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = build_context(tmp_path_factory.mktemp("context") / "counter-web-server")
    return build_wheel(context, tmp_path_factory.mktemp("wheel"))


# --------------------------------------------------------------------------- the service's wheel


def test_service_wheel_holds_only_domain_adapters_and_entrypoints(service_wheel: Path) -> None:
    with zipfile.ZipFile(service_wheel) as archive:
        names = archive.namelist()
    for package in SERVICE_PACKAGES:
        assert f"{package}/__init__.py" in names, f"{package} is missing from {service_wheel.name}"
    assert unexpected_in_wheel(service_wheel, SERVICE_PACKAGES) == []
    assert not [name for name in names if "kube_emulator" in name or name.startswith("tests/")]
    # Package data the page serves (pyproject.toml's package-data)
    assert {f"entrypoints/http/page/static/page.{kind}" for kind in ("html", "js", "css")} <= set(names)
    assert console_scripts(service_wheel) == ["counter"]


def test_wheel_check_catches_a_stray_package_without_the_include_list(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    pyproject = context / "pyproject.toml"
    lines = pyproject.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("include = ")]
    assert len(kept) == len(lines) - 1, "the service's packages.find should have one include list"
    pyproject.write_text("".join(kept))
    (context / "src" / "kube_emulator").mkdir()
    (context / "src" / "kube_emulator" / "__init__.py").write_text("")
    wheel = build_wheel(context, tmp_path / "wheel")
    assert unexpected_in_wheel(wheel, SERVICE_PACKAGES) == ["kube_emulator/__init__.py"]


@pytest.mark.slow
def test_the_wheel_alone_serves_in_a_fresh_virtual_environment(service_wheel: Path, tmp_path: Path) -> None:
    """The wheel and its runtime dependencies (at the image's pins), nothing else, in a venv of its
    own; then `counter serve` on SQLite answers POST /counter over a real socket."""
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, output_of(made)
    # The pins without their hashes: a hash anywhere turns on hash checking for the wheel too.
    pins = tmp_path / "pins.txt"
    pins.write_text(
        "".join(f"{requirement}\n" for requirement, _ in requirement_lines(REQUIREMENTS.read_text()))
    )
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
        "--constraint", pins, service_wheel,
        timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, output_of(installed)
    probe = run(
        python,
        "-c",
        "import importlib.util as u, json, entrypoints; "
        "print(json.dumps([entrypoints.__file__, [m for m in ('kube_emulator', 'pytest', 'tests', 'ruff') "
        "if u.find_spec(m) is not None]]))",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, output_of(probe)
    location, present = json.loads(probe.stdout)
    assert location.startswith(str(venv)), f"entrypoints came from {location}, not from the wheel"
    assert present == [], f"the service's environment should not hold {present}"

    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COUNTER_", "PYTHON"))}
    env |= {
        "COUNTER_BACKEND": "sqlite",
        "COUNTER_SQLITE_PATH": str(tmp_path / "data" / "counter.db"),
        "COUNTER_HOST": "127.0.0.1",
        "COUNTER_PORT": str(port),
        "COUNTER_ACCESS_LOG": "false",
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [venv / "bin" / "counter", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"counter serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"counter serve was not ready:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/counter", timeout=5)
        assert answer.status_code == 200, answer.text
        assert answer.json()["count"] == 1
        page = httpx.get(f"{url}/page", timeout=5)  # its HTML is package data
        assert page.status_code == 200, page.text
    finally:
        stop(process)
    assert (tmp_path / "data" / "counter.db").is_file()


# --------------------------------------------------------------------------- the emulator's distribution


def declared(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(requirement).name) for requirement in requirements}


def undeclared_imports(source: str, allowed: set[str]) -> set[str]:
    """Distributions a module imports from that are neither the standard library nor in `allowed`."""
    distributions = packages_distributions()
    found: set[str] = set()
    for module in imported_modules(source):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "kube_emulator":
            continue
        names = {canonicalize_name(name) for name in distributions.get(top, [top])}
        if not names & allowed:
            found.add(top)
    return found


def test_emulator_declares_every_distribution_it_imports() -> None:
    project = tomllib.loads((EMULATOR / "pyproject.toml").read_text())["project"]
    runtime = declared(project["dependencies"])
    testing = runtime | declared(project["optional-dependencies"]["testing"])
    package = EMULATOR / "src" / "kube_emulator"
    files = sorted(package.rglob("*.py"))
    assert len(files) > 10
    # kube_emulator.testing is the pytest fixtures: the `testing` extra; the rest runs on its own.
    allowed = {path: testing if path.name == "testing.py" else runtime for path in files}
    offenders = {
        str(path.relative_to(EMULATOR)): missing
        for path in files
        if (missing := undeclared_imports(path.read_text(), allowed[path]))
    }
    assert offenders == {}, f"imported but not declared in {EMULATOR / 'pyproject.toml'}: {offenders}"
    assert (package / "py.typed").is_file()


def test_import_check_catches_an_undeclared_distribution() -> None:
    source = "import json\nimport yaml\nfrom kubernetes import client\nfrom kube_emulator import store\n"
    assert undeclared_imports(source, {"pyyaml"}) == {"kubernetes"}


def test_emulator_wheel_holds_the_emulator_and_its_command(tmp_path: Path) -> None:
    source = tmp_path / "kube-emulator"
    shutil.copytree(EMULATOR, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    wheel = build_wheel(source, tmp_path / "wheel")
    assert wheel.name.startswith("counter_kube_emulator-")
    assert unexpected_in_wheel(wheel, ("kube_emulator",)) == []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"kube_emulator/py.typed", "kube_emulator/testing.py", "kube_emulator/__main__.py"} <= names
    assert console_scripts(wheel) == ["counter-kube-emulator"]


def test_service_declares_no_emulator() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "counter-kube-emulator" not in project["scripts"]
    assert not (ROOT / "src" / "kube_emulator").exists(), "the emulator lives in tools/kube-emulator"
    extras = [requirement for group in project["optional-dependencies"].values() for requirement in group]
    assert all("kube-emulator" not in requirement for requirement in [*project["dependencies"], *extras])


# --------------------------------------------------------------------------- installs that fit their use


# Under `make test` the outer make's flags are inherited, and with them "Entering directory" lines.
MAKE = ("make", "--no-print-directory")


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make <target>` would run in a clone without a virtual environment."""
    result = run(*MAKE, "--dry-run", "--always-make", target, f"VENV={tmp_path / 'venv'}")
    assert result.returncode == 0, output_of(result)
    return result.stdout.splitlines()


def pip_installs(commands: list[str]) -> list[str]:
    return [command.split(" install ", 1)[1] for command in commands if " -m pip install " in command]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not on PATH")
def test_make_run_installs_the_service_alone_and_passes_its_args(tmp_path: Path) -> None:
    commands = make_dry_run("run", tmp_path)
    assert pip_installs(commands) == ["--quiet --upgrade pip", "--quiet -e ."]
    assert commands[-1].rstrip() == f"{tmp_path / 'venv'}/bin/counter serve"
    with_args = run(*MAKE, "--dry-run", "run", f"VENV={tmp_path / 'venv'}", "ARGS=--port 9000 --workers 2")
    assert with_args.stdout.splitlines()[-1].endswith("/bin/counter serve --port 9000 --workers 2")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not on PATH")
def test_make_test_installs_the_dev_extras_and_the_emulator(tmp_path: Path) -> None:
    installs = pip_installs(make_dry_run("lint", tmp_path))
    assert installs[-2:] == ["--quiet -e '.[dev]'", "--quiet -e 'tools/kube-emulator[test]'"]


# --------------------------------------------------------------------------- tests in their place

# Runs pytest's collection in a fresh interpreter (collection imports every conftest and test
# module) and prints the modules that should not have been loaded.
_COLLECT_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    import pytest
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", sys.argv[1]])
    unwanted = ("tests.integration", "kube_emulator", "testcontainers")
    loaded = sorted(m for m in sys.modules if m.startswith(unwanted))
    print(json.dumps({"exit": int(code), "loaded": loaded}))
    """
)


def loaded_by_collecting(tests: str, cwd: Path) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT_AND_REPORT, tests],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    last_line = result.stdout.strip().rsplit("\n", 1)[-1]
    report: dict[str, Any] = json.loads(last_line) if last_line.startswith("{") else {"exit": None}
    assert report["exit"] == 0, f"collecting {tests} failed:\n{output_of(result)}"
    loaded: list[str] = report["loaded"]
    return loaded


def test_a_unit_run_loads_no_integration_fixture() -> None:
    assert loaded_by_collecting("tests/unit", ROOT) == []


def test_fixture_check_catches_a_root_conftest_that_loads_integration_plugins(tmp_path: Path) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/conftest.py": 'pytest_plugins = ["tests.integration.fixtures"]\n',
        "tests/integration/__init__.py": "",
        "tests/integration/fixtures.py": "import pytest\n\n@pytest.fixture\ndef server():\n    return 1\n",
        "tests/unit/__init__.py": "",
        "tests/unit/test_nothing.py": "def test_nothing() -> None:\n    pass\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert loaded_by_collecting("tests/unit", tmp_path) == ["tests.integration", "tests.integration.fixtures"]
