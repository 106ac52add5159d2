// B-Coder for VS Code: a thin client of `python -m bcoder lsp`.
//
// The server does the work (code actions, progress, edits, hover, inlay hints, diagnostics);
// this file starts it from the configured interpreter, forwards the `bcoder.*` settings, and adds
// palette commands that act at the cursor plus a quick pick over the ranked candidates.

import { execFile } from "child_process";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;
let output: vscode.OutputChannel | undefined;

interface CommandResult {
  applied?: boolean;
  cancelled?: boolean;
  error?: string;
  qualname?: string;
  rank?: number;
  of?: number;
  reward?: number;
  outcome?: string | null;
}

interface ListedCandidate {
  rank: number;
  reward: number;
  outcome: string | null;
  count: number;
  usable: boolean;
  current: boolean;
  body?: string;
}

/** The interpreter and the arguments that start the server (it inherits the process environment). */
function launch(): { python: string; args: string[] } {
  const config = vscode.workspace.getConfiguration("bcoder");
  const configured = (config.get<string>("pythonPath") ?? "").trim();
  const python = configured || (process.platform === "win32" ? "python" : "python3");
  return { python, args: ["-m", "bcoder", "lsp", ...(config.get<string[]>("serverArgs") ?? [])] };
}

function clientOptions(): LanguageClientOptions {
  return {
    documentSelector: [
      { scheme: "file", language: "python" },
      { scheme: "untitled", language: "python" },
    ],
    // The server also pulls `bcoder` through workspace/configuration; this pushes changes.
    synchronize: { configurationSection: "bcoder" },
    initializationOptions: { bcoder: vscode.workspace.getConfiguration("bcoder") },
    outputChannel: output,
    traceOutputChannel: output,
    // A server that dies during `initialize` is reported by start() below, with the interpreter
    // named, instead of the client's generic "write EPIPE" notification.
    initializationFailedHandler: () => false,
  };
}

/**
 * Why `python` cannot run the server (undefined if it can): a missing interpreter, or one without
 * bcoder and its `lsp` extra. Checked before starting, because the language client would only
 * report that the server's pipe closed. Exported for tests/test_lsp_vscode.py.
 */
export function whyNotRunnable(python: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(python, ["-c", "import bcoder.lsp.server"], { timeout: 60_000 }, (err, _out, stderr) => {
      if (!err) {
        resolve(undefined);
      } else if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        resolve(`${python} was not found`);
      } else {
        const lines = stderr.trim().split("\n");
        resolve(lines[lines.length - 1] || err.message);
      }
    });
  });
}

/** Log the command line (never the server options: they would carry the environment) and say
 * which interpreter to check. */
function cannotStart(python: string, args: string[], reason: string): void {
  output?.appendLine(`failed to start ${[python, ...args].join(" ")}: ${reason}`);
  void vscode.window
    .showErrorMessage(
      `B-Coder: could not start the language server (${reason}). ` +
        `Is bcoder installed for ${python}? Set bcoder.pythonPath to the interpreter of its environment.`,
      "Open settings",
    )
    .then((choice) => {
      if (choice) {
        void vscode.commands.executeCommand("workbench.action.openSettings", "bcoder.pythonPath");
      }
    });
}

async function start(): Promise<void> {
  const { python, args } = launch();
  const reason = await whyNotRunnable(python);
  if (reason !== undefined) {
    cannotStart(python, args, reason);
    return;
  }
  const server: ServerOptions = { command: python, args };
  client = new LanguageClient("bcoder", "B-Coder", server, clientOptions());
  try {
    await client.start();
  } catch (err) {
    cannotStart(python, args, String(err));
  }
}

/** The active Python editor's document and cursor, as the server's command arguments. */
function here(): [string, { line: number; character: number }] | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "python") {
    void vscode.window.showWarningMessage("B-Coder: open a Python file and put the cursor in a function.");
    return undefined;
  }
  const pos = editor.selection.active;
  return [editor.document.uri.toString(), { line: pos.line, character: pos.character }];
}

async function serverCommand(command: string, args: unknown[]): Promise<unknown> {
  if (!client || client.state !== State.Running) {
    void vscode.window.showErrorMessage("B-Coder: the language server is not running (B-Coder: Restart).");
    return undefined;
  }
  return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
}

function report(result: unknown): void {
  const r = result as CommandResult | undefined;
  if (r?.applied) {
    const outcome = r.outcome ? `, ${r.outcome}` : "";
    void vscode.window.setStatusBarMessage(
      `B-Coder: ${r.qualname} ← candidate #${r.rank} of ${r.of} (R~ ${r.reward?.toFixed(3)}${outcome})`,
      8000,
    );
  }
  // errors were already shown by the server (window/showMessage)
}

async function pickCandidate(): Promise<void> {
  const target = here();
  if (!target) {
    return;
  }
  const listed = (await serverCommand("bcoder.listCandidates", target)) as
    | { qualname: string; candidates: ListedCandidate[] }
    | { error: string }
    | undefined;
  if (!listed || !("candidates" in listed)) {
    return;
  }
  const items = listed.candidates
    .filter((c) => c.usable)
    .map((c) => ({
      label: `${c.current ? "$(check) " : ""}#${c.rank}  R~ ${c.reward.toFixed(3)}`,
      description: [c.outcome ?? "untested", c.count > 1 ? `sampled ${c.count}×` : ""]
        .filter(Boolean)
        .join(" · "),
      detail: (c.body ?? "").split("\n").slice(0, 3).join(" ⏎ "),
      rank: c.rank,
    }));
  const picked = await vscode.window.showQuickPick(items, {
    title: `B-Coder: candidates for ${listed.qualname} (best first)`,
    matchOnDetail: true,
  });
  if (picked) {
    report(await serverCommand("bcoder.showCandidate", [...target, picked.rank]));
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("B-Coder"); // disposed by deactivate(), not here
  context.subscriptions.push(
    vscode.commands.registerCommand("bcoder.implementHere", async () => {
      const target = here();
      if (target) {
        report(await serverCommand("bcoder.implement", target));
      }
    }),
    vscode.commands.registerCommand("bcoder.nextCandidateHere", async () => {
      const target = here();
      if (target) {
        report(await serverCommand("bcoder.nextCandidate", target));
      }
    }),
    vscode.commands.registerCommand("bcoder.pickCandidate", pickCandidate),
    vscode.commands.registerCommand("bcoder.showLog", () => output?.show(true)),
    vscode.commands.registerCommand("bcoder.restartServer", async () => {
      if (client) {
        await client.stop().catch(() => undefined);
        client = undefined;
      }
      await start();
      void vscode.window.setStatusBarMessage("B-Coder: language server restarted", 4000);
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("bcoder.pythonPath") || event.affectsConfiguration("bcoder.serverArgs")) {
        void vscode.commands.executeCommand("bcoder.restartServer");
      }
    }),
  );
  await start();
}

/**
 * Stop the client, then close its output channel. VS Code disposes `context.subscriptions` as soon
 * as it calls this, without waiting; so neither is in there, or the channel would close while the
 * stopping client still writes to it ("Channel has been closed").
 */
export async function deactivate(): Promise<void> {
  const stopping = client;
  client = undefined;
  await stopping?.stop().catch(() => undefined);
  output?.dispose();
  output = undefined;
}
