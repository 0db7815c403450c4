"""The hash-pinned lock files agree with pyproject.toml, and CI and the image install from them.

A dependency added to or re-bounded in pyproject.toml without `make lock` fails here, before CI installs an
environment that no longer matches what the project declares.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _lock(name: str) -> dict[str, tuple[str, int]]:
    """Package → (version, number of hashes) of one lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (REPO / name).read_text(encoding="utf-8").splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line.strip() and not line.startswith((" ", "#")):
            pytest.fail(f"{name}: unexpected line {line!r}")
    return pins


def _declared(*, dev: bool) -> list[Requirement]:
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"], *PYPROJECT["build-system"]["requires"]]
    if dev:
        wanted += project["optional-dependencies"]["dev"]
    return [Requirement(text) for text in wanted]


@pytest.mark.parametrize(("lock", "dev"), [("requirements.lock", False), ("requirements-dev.lock", True)])
def test_every_declared_dependency_is_pinned_within_its_bounds_with_hashes(lock: str, dev: bool) -> None:
    pins = _lock(lock)
    for requirement in _declared(dev=dev):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock}: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version} outside {requirement}: run `make lock`"
        )
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_the_runtime_lock_pins_the_same_versions_as_the_dev_lock() -> None:
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")
    assert set(runtime) <= set(dev)
    assert {name: runtime[name][0] for name in runtime} == {name: dev[name][0] for name in runtime}


def test_ci_and_the_image_install_only_from_the_locks() -> None:
    bootstrap = (REPO / "infra" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements-dev.lock" in bootstrap
    assert "--no-deps --no-build-isolation -e ." in bootstrap
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--require-hashes -r requirements-dev.lock" in dockerfile  # the mypyc build stage
    commands = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    installs = re.findall(r"pip install [^\n&]*", "\n".join(commands))
    assert all("--require-hashes" in line or "--no-deps" in line for line in installs), installs
