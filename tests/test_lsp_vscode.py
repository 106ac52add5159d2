"""The VS Code client under lsp/vscode: consistent with the server, editable in the Settings UI,
keeps the environment out of its log, stops before its channel closes, names a wrong interpreter,
compiles, packages.

Compiling needs npm and either ``lsp/vscode/node_modules`` (``npm ci`` there) or access to the npm
registry (the test runs ``npm ci`` in a temporary copy). A clean clone has no node_modules, so those
tests are opt-in (``-m network``); without npm or the registry they are skipped and say why.
Packaging the .vsix is slow too (``-m slow``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest

from bcoder.lsp.settings import ServerSettings

VSCODE = Path(__file__).resolve().parents[1] / "lsp" / "vscode"
CLIENT_ONLY = {"pythonPath", "serverArgs", "trace.server"}
EDITABLE = {"string", "number", "integer", "boolean", "array"}  # types the Settings UI edits


def test_settings_and_commands_match_the_server():
    manifest = json.loads((VSCODE / "package.json").read_text())
    props = manifest["contributes"]["configuration"]["properties"]
    names = {k.removeprefix("bcoder.") for k in props}
    server = {f.name for f in fields(ServerSettings) if f.compare}
    assert names - CLIENT_ONLY == server
    for name in server:  # the defaults agree ("" is the client's spelling of the server's None)
        default = getattr(ServerSettings(), name)
        assert props[f"bcoder.{name}"]["default"] == ("" if default is None else default), name
        if default is None:
            assert getattr(ServerSettings().updated({name: ""}), name) is None, name
    source = (VSCODE / "src" / "extension.ts").read_text()
    from bcoder.lsp import server as lsp_server

    called = set(re.findall(r'serverCommand\("([\w.]+)"', source))
    assert called == {lsp_server.IMPLEMENT, lsp_server.NEXT, lsp_server.SHOW, lsp_server.LIST}
    contributed = {c["command"] for c in manifest["contributes"]["commands"]}
    registered = set(re.findall(r'registerCommand\("([\w.]+)"', source))
    assert contributed == registered
    assert not contributed & called  # the language client registers the server's own ids
    assert (VSCODE / "package-lock.json").is_file()


def test_every_setting_is_editable_in_the_settings_ui():
    """The Settings UI edits one plain type; ``["string", "null"]`` gets "Edit in settings.json"."""
    manifest = json.loads((VSCODE / "package.json").read_text())
    props = manifest["contributes"]["configuration"]["properties"]
    for name, prop in props.items():
        kind = prop["type"]
        assert isinstance(kind, str) and kind in EDITABLE, (name, kind)
        assert prop["default"] is not None, name
        if "enum" in prop:
            assert prop["default"] in prop["enum"], name
            assert len(prop.get("enumItemLabels", prop["enum"])) == len(prop["enum"]), name
    assert "" in props["bcoder.dtype"]["enum"]  # "automatic"


def _function_body(source: str, signature: str) -> str:
    """The text between the braces of the function declared by ``signature``."""
    start = source.index("{", source.index(signature))
    depth = 0
    for i in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        if depth == 0:
            return source[start + 1 : i]
    raise AssertionError(f"unbalanced braces after {signature}")


def test_the_client_logs_no_environment_and_stops_before_its_channel_closes():
    source = (VSCODE / "src" / "extension.ts").read_text()
    # the output channel receives command lines and errors, never the process environment
    logged = re.findall(r"appendLine\((.*?)\);", source, re.S)
    assert logged
    for text in logged:
        assert not re.search(r"env|JSON\.stringify|[oO]ptions", text), text
    assert "process.env" not in source  # the server inherits the environment: nothing to pass

    # VS Code disposes context.subscriptions without awaiting deactivate(): the channel and the
    # client stay out of them, and deactivate stops the client before disposing the channel
    pushed = _function_body(source, "export async function activate(")
    assert not re.search(r"subscriptions\.push\(\s*(output|client)\b", pushed)
    assert "subscriptions.push(client" not in source
    deactivate = _function_body(source, "export async function deactivate(")
    assert deactivate.index(".stop()") < deactivate.index("output?.dispose()")


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


@pytest.mark.network  # npm ci
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


@pytest.mark.network  # npm ci
def test_a_wrong_interpreter_is_named_before_the_server_starts(tmp_path):
    """``whyNotRunnable`` from the compiled bundle, run by node on real interpreters."""
    npm = _npm()
    work = _workspace(tmp_path, npm)
    build = _run([npm, "run", "build"], work, 120)
    assert build.returncode == 0, build.stdout + build.stderr
    bare = tmp_path / "bare"  # an interpreter without bcoder
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    script = """
    const Module = require("module");
    const load = Module._load;  // the bundle needs a "vscode" module to load; the check does not
    const anything = new Proxy({}, { get: () => class {} });
    Module._load = function (request, ...rest) {
      return request === "vscode" ? anything : load.call(this, request, ...rest);
    };
    const { whyNotRunnable } = require(process.argv[1]);
    Promise.all(process.argv.slice(2).map(whyNotRunnable))
      .then((reasons) => console.log(JSON.stringify(reasons.map((r) => r ?? null))));
    """
    pythons = [str(tmp_path / "no-such-python"), str(bare / "bin" / "python"), sys.executable]
    done = _run(["node", "-e", script, str(work / "out" / "extension.js"), *pythons], work, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    missing, without_bcoder, fine = json.loads(done.stdout)
    assert missing == f"{pythons[0]} was not found"
    assert "No module named 'bcoder'" in without_bcoder
    assert fine is None


@pytest.mark.slow
@pytest.mark.network  # npm ci
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
