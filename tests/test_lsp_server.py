"""End to end: a real LSP client (pytest-lsp) drives ``python -m bcoder lsp`` in a subprocess.

The model is tiny and local: a 2-layer Llama trained here for a few seconds to answer any stub
with one of three bodies (``return 42`` / ``return 0`` / ``return None``), so that edits are
real Python; the untrained random tiny model serves as the slow model to cancel.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import client_capabilities, make_test_lsp_client
from support.editor import action_titles, at, attach_editor, command, line_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

BODIES = ("    return 42\n", "    return 0\n", "    return None\n")
LOG = ["--log-file", os.environ["BCODER_LSP_LOG"]] if os.environ.get("BCODER_LSP_LOG") else []
RETURNS = {b.strip() for b in BODIES}

SOURCE = '''import math


def area(r):
    """Area of a circle of radius r.

    >>> area(1) > 3
    True
    """


class Stack:
    """A stack."""

    def push(self, x):
        """Push x on the stack."""
        pass

    def size(self) -> int:
        return 0


def outer(a):
    def inner(b):
        """Twice b."""
        ...

    return inner(a)


TOTAL = 3
'''


def _train_echo_model(directory: Path, seed: int = 0) -> Path:
    """A tiny causal LM that completes a Python stub with one of ``BODIES`` then EOS."""
    import torch
    from support.tiny import tiny_causal_lm, tiny_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many threads on a small model are slower, and the CPU is shared
    try:
        rng = random.Random(seed)
        tok = tiny_tokenizer()
        tok.chat_template = None  # plain completion: the stub is the prompt
        torch.manual_seed(seed)
        model = tiny_causal_lm(tok, seed).train()
        names = ["f", "area", "push", "inner", "max_of_list", "size", "solve", "g"]
        params = ["x", "a, b", "self, x", "xs", "self", "r", "b", "items: list[int]"]
        docs = [
            "",
            "Return x.",
            "Push x on the stack.",
            "Twice b.",
            "Area of r.\n\n    >>> f(1)\n    2\n    ",
        ]
        prompts = []
        for _ in range(64):
            head = rng.choice(["", "import math\n\n", "from typing import List\n\n"])
            doc = rng.choice(docs)
            text = f"{head}def {rng.choice(names)}({rng.choice(params)}):\n"
            prompts.append(tok(text + (f'    """{doc}"""\n' if doc else "")).input_ids)
        targets = [tok(b).input_ids + [tok.eos_token_id] for b in BODIES]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(70):
            batch = [(rng.choice(prompts), rng.choice(targets)) for _ in range(12)]
            width = max(len(p) + len(t) for p, t in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (p, t) in enumerate(batch):
                ids[i, : len(p) + len(t)] = torch.tensor(p + t)
                labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
                mask[i, : len(p) + len(t)] = 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval().save_pretrained(directory)
        tok.save_pretrained(directory)
        return directory
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def echo_model(tmp_path_factory) -> Path:
    return _train_echo_model(tmp_path_factory.mktemp("echo-model"))


@pytest.fixture(scope="module")
def server_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("bcoder-home")
    env = dict(os.environ)
    env.update(
        BCODER_HOME=str(home),
        BCODER_STORE=str(home / "runs.sqlite"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def settings_for(model: Path, **extra) -> dict:
    base = {"model": str(model), "samples": 6, "maxNewTokens": 12, "runTests": False, "seed": 1}
    return {**base, **extra}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(echo_model, server_env):
    c = make_test_lsp_client()
    c.docs = attach_editor(c)
    c.set_configuration({"bcoder": settings_for(echo_model)})
    await c.start_io(sys.executable, "-m", "bcoder", "lsp", *LOG, env=server_env)
    await c.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"bcoder": {"samples": 4}},
        )
    )
    # the server pulls its settings after `initialized`; wait for them before any test runs
    await until(lambda: any("workspace/configuration" in m.message for m in c.log_messages))
    yield c
    await c.shutdown_session()
    await c.stop()


async def test_code_action_only_on_stubs(client):
    uri = "file:///work/actions.py"
    client.docs.open(uri, SOURCE)
    implement = "B-Coder: implement from docstring"
    for needle in ("def area", '"""Area of', "def push", "pass", "def inner", "...", '"""Twice'):
        assert implement in await action_titles(client, uri, line_of(SOURCE, needle)), needle
    for needle in (
        "import math",
        "class Stack",
        '"""A stack',
        "def size",
        "return 0",
        "def outer",
        "TOTAL",
    ):
        assert implement not in await action_titles(client, uri, line_of(SOURCE, needle)), needle
    # a document the client never opened: no action, no crash
    assert await action_titles(client, "file:///work/never-opened.py", 0) == []


def body_after(text: str, exact: str) -> list[str]:
    """The lines after the first line equal to ``exact`` (stripped), up to the next blank line."""
    lines = text.split("\n")
    i = next(i for i, line in enumerate(lines) if line.strip() == exact) + 1
    out = []
    while i < len(lines) and lines[i].strip():
        out.append(lines[i])
        i += 1
    return out


async def test_implement_function_method_and_nested(client, server_env):
    uri = "file:///work/implement.py"
    client.docs.open(uri, SOURCE)
    before = len(client.progress_reports)

    # a top-level function: the body goes after the docstring, indented 4
    result = await command(client, "bcoder.implement", uri, at(SOURCE, "def area"))
    assert result["applied"] is True and result["rank"] == 1, result
    # no examples in the docstring: the tiny model writes tests, none parse, and the ranker for
    # problems without tests (no checkpoint: its default) orders by mean log-prob alone; the log
    # says so
    assert result["ranker"] == "codet-logprob"
    logged = [m.message for m in client.log_messages]
    assert any("ranked by codet-logprob with untrained heads" in m for m in logged)
    (fallback,) = [m for m in client.log_messages if "no generated test ran" in m.message]
    assert fallback.type == lsp.MessageType.Warning and "mean log-prob alone" in fallback.message
    text = client.docs.text[uri]
    (ret,) = body_after(text, '"""')  # the docstring's closing line, then the body
    assert ret.startswith("    return") and ret.strip() in RETURNS
    assert '"""Area of a circle of radius r.' in text and "def area(r):" in text

    # a method with `pass` after its docstring: `pass` is replaced, indentation 8
    line = line_of(text, "def push")
    result = await command(
        client, "bcoder.implement", {"uri": uri, "position": {"line": line, "character": 4}}
    )
    assert result["applied"] is True, result
    text = client.docs.text[uri]
    body = body_after(text, '"""Push x on the stack."""')
    assert len(body) == 1 and body[0].startswith("        return") and body[0].strip() in RETURNS
    assert "pass" not in text

    # a nested function with `...`: indentation 8, the outer function intact
    result = await command(client, "bcoder.implement", uri, at(text, "def inner", 8))
    assert result["applied"] is True, result
    text = client.docs.text[uri]
    body = body_after(text, '"""Twice b."""')
    assert len(body) == 1 and body[0].startswith("        return") and "..." not in text
    assert "    return inner(a)" in text

    ast.parse(text)  # the buffer is valid Python again
    tree = ast.parse(text)
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {"area", "push", "size", "outer", "inner"} <= names
    for fn in (
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name in ("area", "push", "inner")
    ):
        assert isinstance(fn.body[0], ast.Expr) and isinstance(
            fn.body[1], ast.Return
        )  # docstring kept

    # work-done progress: begin ... end for each run
    runs = list(client.progress_reports.values())[before:]
    assert len(runs) == 3
    for reports in runs:
        assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].cancellable
        assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message == "done"

    # every run is in the results store
    from bcoder.pipeline.store import Store

    saved = {r.id for r in Store(server_env["BCODER_STORE"]).list()}
    assert result["runId"] in saved and len(saved) >= 3


async def until(predicate, timeout: float = 60.0, step: float = 0.05):
    """Wait until ``predicate()`` is truthy (the server answers asynchronously)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(step)


def push_settings(c, **values) -> None:
    """Change settings as an editor does: its store, then a didChangeConfiguration push."""
    for key, value in values.items():
        c.set_configuration(value, section=f"bcoder.{key}")
    c.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"bcoder": values})
    )


async def test_values_in_the_editor(client):
    uri = "file:///work/values.py"
    client.docs.open(uri, SOURCE)
    result = await command(client, "bcoder.implement", uri, at(SOURCE, "def area"))
    assert result["applied"], result
    text = client.docs.text[uri]
    line = line_of(text, "    return")
    col = text.split("\n")[line].index("return") + 2

    got = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(line, col))
    )
    value = got.contents.value
    assert f"#1 of {result['of']}" in value and "R~" in value and "| Q | V | A | r~ |" in value
    nothing = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(0, 2))
    )
    assert nothing is None  # not a generated line

    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(
            lsp.TextDocumentIdentifier(uri), lsp.Range(lsp.Position(0, 0), lsp.Position(999, 0))
        )
    )
    labels = [h.label for h in hints if h.position.line == line]
    assert labels and "R~" in labels[0] and "min A" in labels[0]

    (entry,) = await client.protocol.send_request_async(
        "bcoder/candidates", {"textDocument": {"uri": uri}}
    )
    assert entry["qualname"] == "area" and entry["current"] == 1
    assert entry["runId"] == result["runId"]
    best = entry["candidates"][0]
    assert best["rank"] == 1 and best["usable"] and best["tokens"]
    assert best["reward"] == pytest.approx(sum(t["reward"] for t in best["tokens"]), abs=1e-4)
    assert all(t["advantage"] <= 1e-6 for t in best["tokens"])  # A = alpha * (l - max l) <= 0
    rewards = [c["reward"] for c in entry["candidates"]]
    assert rewards == sorted(rewards, reverse=True)

    # diagnostics mark tokens below the advantage threshold: a configuration change moves it
    client.diagnostics.pop(uri, None)
    push_settings(client, unsureAdvantage=0.5)  # every token has A <= 0 < 0.5
    await until(lambda: client.diagnostics.get(uri))
    diags = client.diagnostics[uri]
    assert all(
        d.severity == lsp.DiagnosticSeverity.Information and d.source == "bcoder" for d in diags
    )
    assert {d.range.start.line for d in diags} == {line}
    push_settings(client, unsureAdvantage=-100.0)  # nothing is that unsure
    await until(lambda: list(client.diagnostics.get(uri, [None])) == [])
    push_settings(client, unsureAdvantage=-2.0)


async def test_next_and_listed_candidates(client):
    uri = "file:///work/next.py"
    client.docs.open(uri, SOURCE)
    where = at(SOURCE, "def area")
    first = await command(client, "bcoder.implement", uri, where)
    assert first["applied"] and len(first["usable"]) >= 2, first
    body = lambda: body_after(client.docs.text[uri], '"""')  # noqa: E731
    shown = body()

    titles = await action_titles(client, uri, where["line"])
    assert any(t.startswith("B-Coder: next candidate") for t in titles)
    assert "B-Coder: implement from docstring" not in titles  # it has a body now

    second = await command(client, "bcoder.nextCandidate", uri, where)
    assert second["applied"] and second["rank"] == first["usable"][1], second
    assert body() != shown and len(body()) == 1 and body()[0].strip() in RETURNS

    listed = await command(client, "bcoder.listCandidates", uri, where)
    assert [c["rank"] for c in listed["candidates"]] == list(range(1, first["of"] + 1))
    assert [c["current"] for c in listed["candidates"]].index(True) + 1 == second["rank"]
    assert listed["candidates"][0]["body"].strip() == shown[0].strip()

    back = await command(client, "bcoder.showCandidate", {"uri": uri, "position": where, "rank": 1})
    assert back["rank"] == 1 and body() == shown

    # once the user edits the generated lines, B-Coder does not overwrite them
    lines = client.docs.text[uri].split("\n")
    k = line_of(client.docs.text[uri], shown[0])
    lines[k] = "    return 'mine'"
    client.docs.text[uri] = "\n".join(lines)
    client.docs.version[uri] += 1
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=client.docs.version[uri]),
            [lsp.TextDocumentContentChangeWholeDocument(text=client.docs.text[uri])],
        )
    )
    refused = await command(client, "bcoder.nextCandidate", uri, where)
    assert refused["applied"] is False and "was edited" in refused["error"]
    assert "return 'mine'" in client.docs.text[uri]


async def test_user_errors_and_bad_requests(client):
    uri = "file:///work/errors.py"
    client.docs.open(uri, SOURCE)
    client.messages.clear()

    r = await command(client, "bcoder.implement", uri, at(SOURCE, "TOTAL"))
    assert r["applied"] is False and "not a function" in r["error"]
    r = await command(client, "bcoder.implement", uri, at(SOURCE, "def size", 4))
    assert (
        r["applied"] is False
        and "nothing to implement" in r["error"]
        and "Stack.size" in r["error"]
    )
    r = await command(
        client, "bcoder.implement", "file:///work/not-open.py", {"line": 0, "character": 0}
    )
    assert r["applied"] is False and "not open" in r["error"]
    r = await command(client, "bcoder.nextCandidate", uri, {"line": 3, "character": 0})
    assert r["applied"] is False and "no candidates here" in r["error"]
    shown = [m.message for m in client.messages if m.type == lsp.MessageType.Error]
    assert len(shown) == 4 and any("not a function" in m for m in shown)

    bad_commands = [
        ("bcoder.implement", []),
        ("bcoder.implement", [7, "x"]),
        ("bcoder.implement", [uri, {"line": -1}]),
        ("bcoder.showCandidate", [uri, {"line": 3}, "two"]),
        ("bcoder.noSuchCommand", []),
    ]
    for name, arguments in bad_commands:
        with pytest.raises(JsonRpcException):
            await command(client, name, *arguments)
    for params in ({"textDocument": 3}, None, {"textDocument": {"uri": uri}, "position": "x"}):
        with pytest.raises(JsonRpcException):
            await client.protocol.send_request_async("bcoder/candidates", params)
    # the server is still up and answering
    assert "B-Coder: implement from docstring" in await action_titles(
        client, uri, line_of(SOURCE, "def area")
    )


async def test_missing_model_is_a_clear_error(client, echo_model):
    uri = "file:///work/nomodel.py"
    client.docs.open(uri, SOURCE)
    push_settings(client, model="/nonexistent/model-dir", allowDownload=False)
    try:
        r = await command(client, "bcoder.implement", uri, {"line": 3, "character": 0})
        assert r["applied"] is False and "model path not found" in r["error"], r
        assert any("/nonexistent/model-dir" in m.message for m in client.messages)
    finally:
        push_settings(client, model=str(echo_model), allowDownload=True)


async def _read_message(stdout: asyncio.StreamReader) -> dict:
    length = 0
    while (line := await stdout.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(await stdout.readexactly(length))


async def test_malformed_messages_do_not_crash_the_server(server_env):
    """Raw JSON-RPC on stdio: garbage, wrong shapes and unknown methods get errors, not a crash."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bcoder",
        "lsp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=server_env,
    )
    seen: list[dict] = []  # every message the server sent, in order

    def send(body: bytes) -> None:
        proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(method: str, params) -> None:
        send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode())

    async def read_until(predicate) -> dict:
        while not predicate(message := await asyncio.wait_for(_read_message(proc.stdout), 60)):
            seen.append(message)
        seen.append(message)
        return message

    async def ask(msg_id: int, method: str, params) -> dict:
        send(
            json.dumps(
                {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
            ).encode()
        )
        return await read_until(lambda m: m.get("id") == msg_id and "method" not in m)

    def logged(kind: int, since: int) -> list[str]:
        return [
            m["params"]["message"]
            for m in seen[since:]
            if m.get("method") == "window/logMessage" and m["params"]["type"] == kind
        ]

    try:
        init = await ask(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        assert "codeActionProvider" in init["result"]["capabilities"]
        assert (
            "bcoder.implement"
            in init["result"]["capabilities"]["executeCommandProvider"]["commands"]
        )
        notify("initialized", {})

        # a body that is not JSON, or not UTF-8: Parse error with id null (JSON-RPC 2.0, 5.1)
        for garbage in (b"{this is not json", b"\xff\xfe{}"):
            send(garbage)
            answer = await read_until(lambda m: "error" in m)
            assert answer["id"] is None and answer["error"]["code"] == -32700, answer
        # JSON, but not a JSON-RPC message: Invalid Request with id null
        for wrong in (b"[1, 2]", b"42", b'{"hello": "world"}'):
            send(wrong)
            answer = await read_until(lambda m: "error" in m)
            assert answer["id"] is None and answer["error"]["code"] == -32600, (wrong, answer)

        notify("textDocument/didOpen", {"nope": 1})
        uri = "file:///work/raw.py"
        doc = {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}
        notify("textDocument/didOpen", {"textDocument": doc})

        # a change to a document that was never opened: a warning, not an internal error
        start = {"line": 3, "character": 0}
        await ask(4, "textDocument/hover", {"textDocument": {"uri": uri}, "position": start})
        before = len(seen)  # all that the server sent so far has been read
        notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": "file:///work/never-opened.py", "version": 2},
                "contentChanges": [{"text": "x = 1\n"}],
            },
        )
        await ask(5, "textDocument/hover", {"textDocument": {"uri": uri}, "position": start})
        assert any("never opened" in m for m in logged(2, before)), seen[before:]
        assert logged(1, before) == []

        errors = [
            ("textDocument/hover", {"textDocument": {"uri": uri}}),
            ("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": "everything"}),
            ("workspace/executeCommand", {"command": "bcoder.implement", "arguments": "x"}),
            ("bcoder/noSuchRequest", {}),
        ]
        for i, (method, params) in enumerate(errors, start=10):
            assert "error" in await ask(i, method, params), method
        rng = {"start": start, "end": start}
        ok = await ask(
            99,
            "textDocument/codeAction",
            {"textDocument": {"uri": uri}, "range": rng, "context": {"diagnostics": []}},
        )
        assert [a["title"] for a in ok["result"]] == ["B-Coder: implement from docstring"]
        assert proc.returncode is None
        await ask(100, "shutdown", None)
        notify("exit", None)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def new_progress(c, known: set, text: str) -> str:
    """The token of a progress (not in ``known``) that reported a message containing ``text``."""

    def found():
        for token, reports in c.progress_reports.items():
            if token not in known and any(
                text in (getattr(r, "message", "") or "") for r in reports
            ):
                return token
        return None

    await until(found, timeout=120)
    return found()


async def test_cancellation_and_superseded_requests(client, tiny_model_dir, echo_model):
    """The random tiny model writes long garbage: slow enough to cancel in three ways."""
    uri = "file:///work/cancel.py"
    client.docs.open(uri, SOURCE)
    where = at(SOURCE, "def area")
    push_settings(client, model=str(tiny_model_dir), maxNewTokens=1500, samples=4)
    try:
        # $/cancelRequest: the request ends with RequestCancelled and its work stops
        known = set(client.progress_reports)
        params = lsp.ExecuteCommandParams(command="bcoder.implement", arguments=[uri, where])
        pending = client.protocol.send_request(
            "workspace/executeCommand", params, msg_id="cancel-me"
        )
        token = await new_progress(client, known, "generate")
        assert any(f"loading model {tiny_model_dir}" in m.message for m in client.log_messages)
        client.cancel_request(lsp.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcException, match="cancel"):
            await asyncio.wait_for(asyncio.wrap_future(pending), 60)
        await until(lambda: isinstance(client.progress_reports[token][-1], lsp.WorkDoneProgressEnd))
        assert client.progress_reports[token][-1].message == "cancelled"

        # window/workDoneProgress/cancel: the command answers {cancelled: true}
        known = set(client.progress_reports)
        task = asyncio.ensure_future(command(client, "bcoder.implement", uri, where))
        token = await new_progress(client, known, "generate")
        client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
        result = await asyncio.wait_for(task, 60)
        assert result["applied"] is False and result["cancelled"] is True, result

        # a new request for the same function cancels the stale one
        known = set(client.progress_reports)
        first = asyncio.ensure_future(command(client, "bcoder.implement", uri, where))
        token = await new_progress(client, known, "generate")
        second = asyncio.ensure_future(command(client, "bcoder.implement", uri, where))
        stale = await asyncio.wait_for(first, 60)
        assert stale["cancelled"] is True and "superseded" in stale["reason"]
        newer = await new_progress(client, known | {token}, "")
        client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=newer))
        assert (await asyncio.wait_for(second, 60))["cancelled"] is True
        assert client.docs.text[uri] == SOURCE  # nothing was applied
    finally:
        push_settings(client, model=str(echo_model), maxNewTokens=12, samples=6)
    # the configuration change is respected: back on the echo model, a run succeeds
    result = await command(client, "bcoder.implement", uri, where)
    assert result["applied"] is True, result


ANSWER = 'def answer():\n    """The answer.\n\n    >>> answer()\n    42\n    """\n'


async def test_docstring_examples_run_as_tests(client):
    """With runTests, the doctest is run in the sandbox and a passing candidate is inserted."""
    uri = "file:///work/answer.py"
    client.docs.open(uri, ANSWER)
    push_settings(client, runTests=True, samples=12)
    try:
        result = await command(client, "bcoder.implement", uri, {"line": 0, "character": 0})
    finally:
        push_settings(client, runTests=False, samples=6)
    assert result["applied"] and result["outcome"] == "pass", result
    assert body_after(client.docs.text[uri], '"""') == ["    return 42"]
    listed = await command(client, "bcoder.listCandidates", uri, {"line": 0, "character": 0})
    outcomes = {c["body"].strip(): c["outcome"] for c in listed["candidates"] if c["usable"]}
    assert outcomes["return 42"] == "pass"
    assert all(o == "fail" for b, o in outcomes.items() if b != "return 42") and len(outcomes) >= 2


async def test_fast_path_inserts_the_first_passing_candidate(client):
    """With fastPath, the body goes in as soon as one candidate passes the docstring's tests; the
    rest of the candidates keep coming, and next candidate then steps through all of them."""
    uri = "file:///work/fast.py"
    client.docs.open(uri, ANSWER)
    where = {"line": 0, "character": 0}
    push_settings(client, runTests=True, samples=48, fastPath=True)
    try:
        first = await command(client, "bcoder.implement", uri, where)
        assert first["applied"] and first["outcome"] == "pass", first
        assert first.get("pending") is True and first["of"] == 1, first
        assert body_after(client.docs.text[uri], '"""') == ["    return 42"]
        await until(lambda: any("candidates are in" in m.message for m in client.log_messages))
    finally:
        push_settings(client, runTests=False, samples=6, fastPath=False)
    listed = await command(client, "bcoder.listCandidates", uri, where)
    assert len(listed["candidates"]) >= 2
    current = next(c for c in listed["candidates"] if c["current"])
    assert current["body"].strip() == "return 42" and current["outcome"] == "pass"
    nxt = await command(client, "bcoder.nextCandidate", uri, where)
    assert nxt["applied"] and body_after(client.docs.text[uri], '"""') != ["    return 42"]


async def test_tcp_mode_and_cli_errors(server_env):
    """``bcoder lsp --tcp HOST:PORT`` serves LSP over TCP; a bad address is a one-line error."""
    bad = subprocess.run(
        [sys.executable, "-m", "bcoder", "lsp", "--tcp", "nowhere"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --tcp expects HOST:PORT")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bcoder", "lsp", "--tcp", f"127.0.0.1:{port}", env=server_env
    )
    try:
        for _ in range(600):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server never listened")
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        ).encode()
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        answer = await asyncio.wait_for(_read_message(reader), 60)
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "bcoder"
        writer.close()
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.slow  # a fresh server loading torch: a minute on a busy 2-core machine
async def test_server_exits_when_the_client_goes_away(server_env, tiny_model_dir):
    """Closing stdin mid-run cancels the job, so the worker thread does not keep the process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bcoder",
        "lsp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=server_env,
    )

    def send(message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    try:
        settings = settings_for(tiny_model_dir, maxNewTokens=1900, samples=8)
        caps = {"window": {"workDoneProgress": True}}
        send(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "processId": None,
                    "rootUri": None,
                    "capabilities": caps,
                    "initializationOptions": {"bcoder": settings},
                },
            }
        )
        send({"method": "initialized", "params": {}})
        uri = "file:///work/gone.py"
        doc = {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}
        send({"method": "textDocument/didOpen", "params": {"textDocument": doc}})
        args = [uri, at(SOURCE, "def area")]
        send(
            {
                "id": 2,
                "method": "workspace/executeCommand",
                "params": {"command": "bcoder.implement", "arguments": args},
            }
        )
        while True:  # answer the progress creation, wait until sampling runs
            msg = await asyncio.wait_for(_read_message(proc.stdout), 120)
            if msg.get("method") == "window/workDoneProgress/create":
                send({"id": msg["id"], "result": None})
            value = (
                msg.get("params", {}).get("value", {}) if msg.get("method") == "$/progress" else {}
            )
            if "generate" in (value.get("message") or ""):
                break
        proc.stdin.close()
        closed = asyncio.get_running_loop().time()
        await asyncio.wait_for(proc.wait(), 60)
        # sampling 8 x 1900 tokens takes minutes; the job stopped at the next token
        assert asyncio.get_running_loop().time() - closed < 30
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.slow  # a fresh server loading torch, like the test above
async def test_shutdown_while_a_job_runs(server_env, tiny_model_dir):
    """Quitting the editor mid-run: ``shutdown`` answers without an error and the process exits.

    pygls cancels the pending requests while iterating over their dict, and cancelling the running
    command removes it from that dict: -32603 "dictionary changed size during iteration".
    """
    c = make_test_lsp_client()
    settings = {"bcoder": settings_for(tiny_model_dir, maxNewTokens=1900, samples=8)}
    c.set_configuration(settings)
    await c.start_io(sys.executable, "-m", "bcoder", "lsp", *LOG, env=server_env)
    try:
        await c.initialize_session(
            lsp.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options=settings,
            )
        )
        uri = "file:///work/quit.py"
        c.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "python", 1, SOURCE))
        )
        where = at(SOURCE, "def area")
        params = lsp.ExecuteCommandParams(command="bcoder.implement", arguments=[uri, where])
        pending = c.protocol.send_request("workspace/executeCommand", params)
        await new_progress(c, set(), "generate")

        assert await asyncio.wait_for(c.shutdown_async(None), 30) is None
        with pytest.raises(JsonRpcException, match="cancel"):  # the job's request is cancelled
            await asyncio.wait_for(asyncio.wrap_future(pending), 30)
        c.exit(None)
        assert await asyncio.wait_for(c._server.wait(), 30) == 0
    finally:
        if c._server.returncode is None:
            c._server.kill()
        await c.stop()
