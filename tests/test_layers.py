"""The package layers of DESIGN section 1, as import-linter contracts (pyproject.toml).

cli/, lsp/ and train/ install as bcoder.cli, bcoder.lsp and bcoder.train (pyproject's package-dir),
which import-linter cannot see in the source tree: the test copies the Python files into that
installed layout and runs ``lint-imports`` on the copy. Every import counts, function-local ones too.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(out: Path) -> Path:
    """A copy of the package's Python files as they install: bcoder/ with cli/, lsp/, train/ in it."""
    skip = shutil.ignore_patterns("vscode", "node_modules", "__pycache__", "checkpoints", "configs")
    shutil.copytree(ROOT / "bcoder", out / "bcoder", ignore=skip)
    for sub in ("cli", "lsp", "train"):
        shutil.copytree(ROOT / sub, out / "bcoder" / sub, ignore=skip)
    return out


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the copy at ``tree``."""
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run(
        [*command, str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )


def test_import_contracts_hold(tmp_path):
    out = lint_imports(installed_layout(tmp_path / "tree"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout and "4 kept" in out.stdout, out.stdout


def test_the_contract_catches_an_upward_import(tmp_path):
    """The check is live: one upward import (core -> pipeline) breaks the layers contract."""
    tree = installed_layout(tmp_path / "tree")
    errors = tree / "bcoder" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport bcoder.pipeline.solve  # noqa\n")
    out = lint_imports(tree)
    assert out.returncode != 0
    assert "bcoder.core.errors -> bcoder.pipeline.solve" in out.stdout, out.stdout
