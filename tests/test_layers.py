"""The layers of the architecture hold: `make lint` runs import-linter on the contracts in
pyproject.toml, and these tests prove that those contracts pass on the tree and catch an
upward import, a sideways import and a workflow that reaches for I/O."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMPORTLINTER: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "importlinter"
]
PACKAGES: list[str] = IMPORTLINTER["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and their contracts, free to break."""
    copy = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return copy


def test_every_package_is_under_a_contract() -> None:
    top_level = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("tests", "bench")
    }
    assert top_level == set(PACKAGES)
    [layers] = [c for c in IMPORTLINTER["contracts"] if c["type"] == "layers"]
    layered = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    assert layered == set(PACKAGES)


def test_the_tree_keeps_its_contracts(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("journeys/conditions.py", "import api.app", "Layers"),
        ("journeys/model.py", "import cli.main", "Layers"),
        ("workflows/client.py", "from activities import journey", "Layers"),
        ("api/app.py", "import relay.router", "Layers"),
        ("relay/router.py", "from api import app", "Layers"),
        ("activities/sweep.py", "import api_client", "Layers"),
        ("journey_designer/api.py", "import worker.main", "Layers"),
        ("simulator/run.py", "import api.app", "Layers"),
        ("activities/journey.py", "import simulator", "Layers"),
        ("workflows/journey.py", "import httpx", "Workflow code is deterministic"),
    ],
)
def test_a_forbidden_import_breaks_lint(
    tree: Path, module: str, statement: str, contract: str
) -> None:
    source = tree / module
    original = source.read_text()
    source.write_text(f"{original}\n{statement}\n")
    try:
        result = _lint(tree)
    finally:
        source.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line.startswith(contract) for line in broken] == [True], result.stdout


def test_no_module_is_over_700_lines() -> None:
    """Small modules keep the layers readable; split by responsibility before this fails."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {module: lines for module, lines in sizes.items() if lines > 700} == {}
