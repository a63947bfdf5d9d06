"""The Medusa provider package (integrations/medusa-payment-netvalve) from a fresh copy:
installed from its lockfile, type-checked, unit-tested and packed with npm, as CI and the Medusa
store harness use it."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "integrations" / "medusa-payment-netvalve"
NPM = shutil.which("npm")
# Build output and installs of a local run are not part of a fresh clone.
NOT_COPIED = shutil.ignore_patterns("node_modules", "dist", "build-test", "*.tgz")

pytestmark = pytest.mark.skipif(NPM is None, reason="npm is not installed")


def npm(*args: str, cwd: Path) -> str:
    """Runs npm in `cwd`; fails the test with npm's output unless it succeeds."""
    env = {
        **os.environ,
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }
    done = subprocess.run(
        [str(NPM), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-6000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package, installed with `npm ci` (a first install may take a minute)."""
    copy = tmp_path_factory.mktemp("provider") / "medusa-payment-netvalve"
    shutil.copytree(PACKAGE, copy, ignore=NOT_COPIED)
    npm("ci", cwd=copy)
    return copy


def test_installs_the_pinned_medusa_framework_from_the_lockfile(package: Path) -> None:
    installed = (package / "node_modules" / "@medusajs" / "framework" / "package.json").read_text()
    assert '"version": "2.21.2"' in installed


def test_type_checks_in_strict_mode(package: Path) -> None:
    npm("run", "typecheck", cwd=package)


def test_unit_tests_pass(package: Path) -> None:
    output = npm("test", cwd=package)
    assert "# fail 0" in output
    assert "# pass 0" not in output


def test_packs_the_built_module_without_sources_tests_or_dependencies(
    package: Path, tmp_path: Path
) -> None:
    npm("pack", "--pack-destination", str(tmp_path), cwd=package)
    (tarball,) = tmp_path.glob("medusa-payment-netvalve-*.tgz")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"package/package.json", "package/dist/index.js", "package/dist/index.d.ts"} <= names
    assert "package/README.md" in names
    shipped = {"package/package.json", "package/README.md"} | {
        name
        for name in names
        if name.startswith("package/dist/")
        and name.endswith((".js", ".d.ts"))
        and ".test." not in name
    }
    assert names == shipped, f"not meant to ship: {sorted(names - shipped)}"
    assert not [name for name in names if "node_modules" in name or "/src/" in name]
