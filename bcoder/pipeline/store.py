"""The results store: every solve, saved in SQLite (stdlib) and read back by the CLI, TUI and LSP.

One row per run (problem, settings, timings and the tests the model wrote as JSON, plus the columns
``runs list`` shows) and one
row per candidate (rank, reward, outcome, and the candidate as JSON with its per-token scores stored
column-wise). Writes are single transactions; the database is in WAL mode with a busy timeout, so
the CLI and the language server can write at the same time. ``PRAGMA user_version`` is the schema
version.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import write_error
from bcoder.core.types import Candidate, GeneratedTests, SolveResult, TokenScore

SCHEMA_VERSION = 2  # 2: runs.generated (the tests the model wrote); a version-1 file gains it
_TOKEN_FIELDS = [f.name for f in fields(TokenScore)]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,              -- unix time
    problem_id TEXT NOT NULL,
    title TEXT NOT NULL,                -- first line of the problem statement
    model TEXT NOT NULL,
    n_candidates INTEGER NOT NULL,
    best_reward REAL,                   -- R~ of the top-ranked candidate
    best_outcome TEXT,                  -- outcome of the top-ranked candidate (NULL: untested)
    heads TEXT NOT NULL,
    problem TEXT NOT NULL,              -- JSON
    settings TEXT NOT NULL,             -- JSON
    timings TEXT NOT NULL,              -- JSON
    generated TEXT                      -- JSON: GeneratedTests.to_dict(), NULL when none
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE TABLE IF NOT EXISTS candidates (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,              -- 0 = best
    reward REAL NOT NULL,
    outcome TEXT,
    data TEXT NOT NULL,                 -- JSON: Candidate.to_dict(), tokens column-wise
    PRIMARY KEY (run_id, rank)
);
"""

# a file of version K is brought to SCHEMA_VERSION by _MIGRATIONS[K] (new columns go last, as
# ALTER TABLE puts them, so that rows keep one column order)
_MIGRATIONS = {1: "ALTER TABLE runs ADD COLUMN generated TEXT;"}


def default_store_path() -> Path:
    """``$BCODER_STORE``, else ``$BCODER_HOME/runs.sqlite``, else the user data dir."""
    if env := os.environ.get("BCODER_STORE"):
        return Path(env).expanduser()
    if env := os.environ.get("BCODER_HOME"):
        return Path(env).expanduser() / "runs.sqlite"
    from platformdirs import user_data_dir

    return Path(user_data_dir("bcoder")) / "runs.sqlite"


@dataclass
class RunSummary:
    """One line of ``bcoder runs list``."""

    id: str
    created: float  # unix time
    problem_id: str
    title: str
    model: str
    n_candidates: int
    best_reward: float | None
    best_outcome: str | None
    cancelled: bool = False  # stopped by Ctrl-C: the candidates it had by then (settings.cancelled)

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created).isoformat(sep=" ", timespec="seconds")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_iso": self.created_iso}


def new_run_id(now: float | None = None) -> str:
    """A short id that sorts by time: ``YYMMDD-HHMMSS-xxxx`` (local time, 4 random hex digits)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now)
    return f"{stamp:%y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _candidate_json(c: Candidate) -> str:
    d = c.to_dict()
    d["tokens"] = {k: [t[k] for t in d["tokens"]] for k in _TOKEN_FIELDS}
    return json.dumps(d, ensure_ascii=False)


def _candidate_from_json(text: str) -> Candidate:
    d = json.loads(text)
    cols = d["tokens"]
    n = len(cols["text"]) if cols else 0
    d["tokens"] = [{k: cols[k][i] for k in cols} for i in range(n)]
    return Candidate.from_dict(d)


def _title(problem: dict[str, Any]) -> str:
    for key in ("title", "text", "starter_code"):
        text = str(problem.get(key) or "").strip()
        if text:
            return text.splitlines()[0][:120]
    return ""


def _unusable(path: Path, err: sqlite3.Error) -> str:
    return (
        f"the results store {path} cannot be used ({err}): move it aside, or set BCODER_STORE "
        "(or --store) to another file"
    )


class Store:
    """A SQLite file of solve results. Safe to use from several processes at once."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BcoderError(
                f"cannot open the results store: {write_error(self.path, err)}"
            ) from None
        with self._connect() as db:
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:  # a new file, or an older one to bring up to date
                    script = _SCHEMA if version == 0 else _MIGRATIONS[version]
                    db.executescript(
                        f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
            except sqlite3.DatabaseError as err:
                raise BcoderError(_unusable(self.path, err)) from None
            if version > SCHEMA_VERSION:
                raise BcoderError(
                    f"the results store {self.path} has schema version {version}, newer than "
                    f"this bcoder understands ({SCHEMA_VERSION}); upgrade bcoder"
                )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as err:
            raise BcoderError(f"cannot open the results store {self.path}: {err}") from None
        try:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.DatabaseError as err:  # not a database, or not one we may write
                raise BcoderError(_unusable(self.path, err)) from None
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken up front (BEGIN IMMEDIATE) so writers queue, not deadlock."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def save(self, result: SolveResult) -> str:
        """Save ``result`` (candidates ranked best first) in one transaction; return its run id."""
        cands = result.candidates
        best = cands[0] if cands else None
        row = [
            "",
            time.time(),
            str(result.problem.get("id") or ""),
            _title(result.problem),
            str(result.settings.get("model") or ""),
            len(cands),
            best.reward if best else None,
            best.outcome if best else None,
            result.heads,
            json.dumps(result.problem, ensure_ascii=False),
            json.dumps(result.settings, ensure_ascii=False),
            json.dumps(result.timings),
            json.dumps(result.generated.to_dict()) if result.generated is not None else None,
        ]
        cand_rows = [(i, c.reward, c.outcome, _candidate_json(c)) for i, c in enumerate(cands)]
        for attempt in range(5):
            run_id = row[0] = new_run_id(row[1])
            try:
                with self._transaction() as db:
                    db.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
                    db.executemany(
                        "INSERT INTO candidates VALUES (?, ?, ?, ?, ?)",
                        [(run_id, *r) for r in cand_rows],
                    )
                break
            except sqlite3.IntegrityError:  # the same id drawn twice in one second: draw again
                if attempt == 4:
                    raise
        result.run_id = run_id
        return run_id

    def resolve_id(self, run_id: str) -> str:
        """The full id for ``run_id``, a unique prefix of one, or ``last`` (the newest run)."""
        with self._connect() as db:
            if run_id == "last":
                rows = db.execute("SELECT id FROM runs ORDER BY created DESC LIMIT 1").fetchall()
                if not rows:
                    raise BcoderError("the results store has no runs yet")
                return rows[0][0]
            pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = db.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6", (pattern,)
            ).fetchall()
        ids = [r[0] for r in rows]
        if run_id in ids:
            return run_id
        if not ids:
            raise BcoderError(f"no run {run_id!r} in {self.path} (see `bcoder runs list`)")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise BcoderError(f"run id {run_id!r} is ambiguous: {shown}")
        return ids[0]

    def get(self, run_id: str) -> SolveResult:
        """The saved run ``run_id`` (full id, unique prefix, or ``last``)."""
        full = self.resolve_id(run_id)
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for both reads
            problem, settings, timings, heads, generated = db.execute(
                "SELECT problem, settings, timings, heads, generated FROM runs WHERE id = ?",
                (full,),
            ).fetchone()
            rows = db.execute(
                "SELECT data FROM candidates WHERE run_id = ? ORDER BY rank", (full,)
            ).fetchall()
            db.execute("COMMIT")
        return SolveResult(
            problem=json.loads(problem),
            settings=json.loads(settings),
            candidates=[_candidate_from_json(r[0]) for r in rows],
            heads=heads,
            timings=json.loads(timings),
            run_id=full,
            generated=GeneratedTests.from_dict(json.loads(generated)) if generated else None,
        )

    def list(self, limit: int = 50) -> list[RunSummary]:
        """The newest ``limit`` runs, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, created, problem_id, title, model, n_candidates, best_reward, "
                "best_outcome, CASE WHEN json_valid(settings) THEN json_extract(settings, "
                "'$.cancelled') END FROM runs ORDER BY created DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [RunSummary(*r[:-1], cancelled=bool(r[-1])) for r in rows]

    def update_candidate_outcomes(self, run_id: str, candidates: Sequence[Candidate]) -> None:
        """Record test results obtained after the run was saved (e.g. run later from the TUI).

        ``candidates`` are the run's candidates in their saved (ranked) order; each one's
        ``outcome``, ``true_reward``, ``tests`` and ``passed_examples`` replace the stored ones.
        """
        full = self.resolve_id(run_id)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT rank, data FROM candidates WHERE run_id = ? ORDER BY rank", (full,)
            ).fetchall()
            if len(rows) != len(candidates):
                raise BcoderError(
                    f"run {full} has {len(rows)} candidates, got outcomes for {len(candidates)}"
                )
            for (rank, data), new in zip(rows, candidates, strict=True):
                stored = _candidate_from_json(data)
                stored.outcome, stored.true_reward = new.outcome, new.true_reward
                stored.tests, stored.passed_examples = new.tests, new.passed_examples
                db.execute(
                    "UPDATE candidates SET outcome = ?, data = ? WHERE run_id = ? AND rank = ?",
                    (stored.outcome, _candidate_json(stored), full, rank),
                )
            if candidates:
                db.execute(
                    "UPDATE runs SET best_outcome = ? WHERE id = ?", (candidates[0].outcome, full)
                )

    def delete(self, run_id: str) -> None:
        """Remove a run and its candidates."""
        full = self.resolve_id(run_id)
        with self._transaction() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (full,))
