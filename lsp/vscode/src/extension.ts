// B-Coder for VS Code: a thin client of `python -m bcoder lsp`.
//
// The server does the work (code actions, progress, edits, hover, inlay hints, diagnostics);
// this file starts it from the configured interpreter, forwards the `bcoder.*` settings, and adds
// palette commands that act at the cursor plus a quick pick over the ranked candidates.

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

function serverOptions(): ServerOptions {
  const config = vscode.workspace.getConfiguration("bcoder");
  const configured = (config.get<string>("pythonPath") ?? "").trim();
  const python = configured || (process.platform === "win32" ? "python" : "python3");
  const args = ["-m", "bcoder", "lsp", ...(config.get<string[]>("serverArgs") ?? [])];
  return { command: python, args, options: { env: process.env } };
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
  };
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  client = new LanguageClient("bcoder", "B-Coder", serverOptions(), clientOptions());
  try {
    await client.start();
  } catch (err) {
    const python = serverOptions();
    void vscode.window
      .showErrorMessage(
        `B-Coder: could not start the language server (${String(err)}). ` +
          "Is bcoder installed for the interpreter in the setting bcoder.pythonPath?",
        "Open settings",
      )
      .then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand("workbench.action.openSettings", "bcoder.pythonPath");
        }
      });
    output?.appendLine(`failed to start ${JSON.stringify(python)}: ${String(err)}`);
    return;
  }
  context.subscriptions.push(client);
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
  output = vscode.window.createOutputChannel("B-Coder");
  context.subscriptions.push(
    output,
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
      await start(context);
      void vscode.window.setStatusBarMessage("B-Coder: language server restarted", 4000);
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("bcoder.pythonPath") || event.affectsConfiguration("bcoder.serverArgs")) {
        void vscode.commands.executeCommand("bcoder.restartServer");
      }
    }),
  );
  await start(context);
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop();
  }
}
