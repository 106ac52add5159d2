"""Time the editor's code action as a user sees it: a real LSP client drives `bcoder lsp`.

    python3 research/bench_lsp.py                      # default model, fast path on
    python3 research/bench_lsp.py --no-fast-path       # wait for every candidate
    python3 research/bench_lsp.py --prefill            # the model writes only the body
    python3 research/bench_lsp.py --model smollm2-135m --samples 8

Opens examples/max_of_list.py (the README stub), runs "B-Coder: implement from docstring" and
reports: seconds until the body is inserted (the workspace edit arrives), seconds until all
candidates are in (the fast path goes on after inserting), the model load time (a first request
loads the model: --warm makes one request first, so the timed one finds it loaded), and the
work-done progress reports the editor received (their percentages show whether the bar moves).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import client_capabilities, make_test_lsp_client

ROOT = Path(__file__).resolve().parents[1]


async def run(args: argparse.Namespace) -> dict:
    client = make_test_lsp_client()
    text = (ROOT / "examples" / "max_of_list.py").read_text()
    docs: dict[str, str] = {}
    inserted: dict[str, float] = {}

    @client.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        inserted.setdefault("at", time.monotonic())
        return lsp.ApplyWorkspaceEditResult(applied=True)

    settings = {
        "model": args.model,
        "samples": args.samples,
        "runTests": True,
        "fastPath": not args.no_fast_path,
        "backend": args.backend,
        "prefill": args.prefill,
    }
    client.set_configuration({"bcoder": settings})
    await client.start_io(sys.executable, "-m", "bcoder", "lsp")
    await client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"bcoder": settings},
        )
    )
    out: dict = {"settings": settings}
    for name in ["warm-up", "timed"] if args.warm else ["timed"]:
        uri = f"file:///bench/{name}.py"
        docs[uri] = text
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "python", 1, text))
        )
        inserted.clear()
        seen, tokens = len(client.log_messages), set(client.progress_reports)
        t0 = time.monotonic()
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(
                command="bcoder.implement", arguments=[uri, {"line": 0, "character": 0}]
            )
        )
        answered = time.monotonic() - t0
        while result.get("pending") and not any(
            "candidates are in" in m.message for m in client.log_messages[seen:]
        ):
            await asyncio.sleep(0.2)
        progress = [
            v for tok, values in client.progress_reports.items() if tok not in tokens
            for v in values
        ]  # fmt: skip
        out[name] = {
            "inserted_s": inserted["at"] - t0 if "at" in inserted else None,
            "answered_s": answered,
            "all_candidates_s": time.monotonic() - t0,
            "outcome": result.get("outcome"),
            "pending": bool(result.get("pending")),
            "progress_reports": len(progress),
            "percentages": [getattr(v, "percentage", None) for v in progress],
            "messages": [getattr(v, "message", None) for v in progress][:4],
        }
        print(f"{name}: {json.dumps(out[name])}", flush=True)
    await client.shutdown_session()
    await client.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--no-fast-path", action="store_true")
    ap.add_argument("--prefill", action="store_true", help="the stub's answer starts in the prompt")
    ap.add_argument("--warm", action="store_true", help="a first request loads the model")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out = asyncio.run(run(args))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
