"""The VS Code client under lsp/vscode: consistent with the server, compiles, packages.

Compiling needs npm and either ``lsp/vscode/node_modules`` (``npm ci`` there) or access to the npm
registry (the test runs ``npm ci`` in a temporary copy); otherwise it is skipped and says why.
Packaging the .vsix is slow (``-m slow``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest

from bcoder.lsp.settings import ServerSettings

VSCODE = Path(__file__).resolve().parents[1] / "lsp" / "vscode"
CLIENT_ONLY = {"pythonPath", "serverArgs", "trace.server"}


def test_settings_and_commands_match_the_server():
    manifest = json.loads((VSCODE / "package.json").read_text())
    props = manifest["contributes"]["configuration"]["properties"]
    names = {k.removeprefix("bcoder.") for k in props}
    server = {f.name for f in fields(ServerSettings) if f.compare}
    assert names - CLIENT_ONLY == server
    for name in server:  # the defaults agree
        default = getattr(ServerSettings(), name)
        assert props[f"bcoder.{name}"]["default"] == default, name
    source = (VSCODE / "src" / "extension.ts").read_text()
    from bcoder.lsp import server as lsp_server

    called = set(re.findall(r'serverCommand\("([\w.]+)"', source))
    assert called == {lsp_server.IMPLEMENT, lsp_server.NEXT, lsp_server.SHOW, lsp_server.LIST}
    contributed = {c["command"] for c in manifest["contributes"]["commands"]}
    registered = set(re.findall(r'registerCommand\("([\w.]+)"', source))
    assert contributed == registered
    assert not contributed & called  # the language client registers the server's own ids
    assert (VSCODE / "package-lock.json").is_file()


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the VS Code client was not compiled")
    return npm


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "npm_config_update_notifier": "false"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _workspace(tmp_path: Path, npm: str) -> Path:
    """A copy of lsp/vscode (sources, manifest, lockfile) with its node_modules."""
    work = tmp_path / "vscode"
    shutil.copytree(VSCODE, work, ignore=shutil.ignore_patterns("node_modules", "out", "*.vsix"))
    if (VSCODE / "node_modules" / ".bin" / "tsc").exists():
        (work / "node_modules").symlink_to(VSCODE / "node_modules")
        return work
    try:
        done = _run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], work, 300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci took over 300 s: the VS Code client was not compiled")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip(f"npm ci failed (no registry access?): {' | '.join(tail)}")
    return work


def test_vscode_client_compiles(tmp_path):
    npm = _npm()
    work = _workspace(tmp_path, npm)
    typecheck = _run([npm, "run", "typecheck"], work, 180)
    assert typecheck.returncode == 0, typecheck.stdout + typecheck.stderr
    build = _run([npm, "run", "build"], work, 120)
    assert build.returncode == 0, build.stdout + build.stderr
    bundle = (work / "out" / "extension.js").read_text()
    assert "bcoder.implement" in bundle and "bcoder.restartServer" in bundle
    assert "workspace/executeCommand" in bundle  # vscode-languageclient is bundled in
    assert 'require("vscode")' in bundle  # and vscode stays external


@pytest.mark.slow
def test_vscode_client_packages_to_a_vsix(tmp_path):
    npm = _npm()
    work = _workspace(tmp_path, npm)
    done = _run([npm, "run", "package"], work, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(work / "bcoder.vsix") as vsix:
        names = set(vsix.namelist())
        assert {"extension/package.json", "extension/out/extension.js"} <= names
        assert not any("node_modules" in n or n.endswith(".ts") for n in names)
        packaged = json.loads(vsix.read("extension/package.json"))
    assert packaged["main"] == "./out/extension.js"
    assert "bcoder.model" in packaged["contributes"]["configuration"]["properties"]
