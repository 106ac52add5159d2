"""Programs files: programs written elsewhere, one JSON object a line, in one schema for every
command that reads or writes them (``bcoder rank``, ``bcoder eval export`` and ``--rank-only``,
``bcoder train import``, ``train select``)::

    {"problem": "mbpp:mbpp/11", "code": "def f(...): ...", "id": "model-a/3"}

- ``problem``: a problem reference :func:`bcoder.problems.load.load_problem` accepts
  (``DATASET:ID``, ``FILE.jsonl:ID``, ``problem.txt`` ...). Commands that work on a selection of
  a dataset (eval, train) also match it by the selected problems' ids (``mbpp/11``, ``11``).
  It may be left out when the command is given one problem for the whole file.
- ``code``: the program.
- ``id`` (optional): the line's own name, carried into what is made of it (``bcoder rank``'s
  candidates); ``FILE:LINE`` when absent.

Older files named the problem ``problem_id`` (or ``task_id``, and the code ``completion``, as
HumanEval's sample files do): they are read as before, with a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem

OLD_PROBLEM_KEYS = ("problem_id", "task_id")


@dataclass(frozen=True)
class ProgramRow:
    """One line of a programs file."""

    problem: str | None  # a problem reference or id (None: the command's one problem)
    code: str
    id: str  # the line's "id", else FILE:LINE


@dataclass
class ProgramsFile:
    rows: list[ProgramRow]
    notes: list[str] = field(default_factory=list)  # one line each, for the user


def read_programs(path: str | Path) -> ProgramsFile:
    """The rows of a programs file; a malformed line is a one-line error naming FILE:LINE."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BcoderError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BcoderError(f"{path}: cannot read ({err})") from None
    rows, old_keys = [], set()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BcoderError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise BcoderError(f'{where}: expected an object with "problem" and "code"')
        code_key = "code" if "code" in row else "completion" if "completion" in row else "code"
        problem_key = next((k for k in ("problem", *OLD_PROBLEM_KEYS) if k in row), "problem")
        code, problem = row.get(code_key), row.get(problem_key)
        if not isinstance(code, str):
            raise BcoderError(f'{where}: expected a string "code"')
        if problem is not None and not isinstance(problem, str | int):
            raise BcoderError(f'{where}: "problem" must be a string')
        old_keys.update(k for k in (code_key, problem_key) if k not in ("code", "problem"))
        name = row.get("id")
        rows.append(ProgramRow(None if problem is None else str(problem), code,
                               str(name) if name is not None else where))  # fmt: skip
    if not rows:
        raise BcoderError(f"{path}: no programs")
    notes = [
        f'{path}: read "{k}" as "{"code" if k == "completion" else "problem"}" (its name in '
        "older programs files)"
        for k in sorted(old_keys)
    ]
    return ProgramsFile(rows, notes)


def by_reference(rows: list[ProgramRow], default: str | None) -> list[tuple[str, list[ProgramRow]]]:
    """Rows grouped by problem reference in order of first appearance (``default`` for rows
    without one). A reference written as a bare problem id (``mbpp/11``, as older exports did)
    becomes loadable (``mbpp:mbpp/11``)."""
    groups: dict[str, list[ProgramRow]] = {}
    for row in rows:
        ref = row.problem if row.problem is not None else default
        if not ref:
            raise BcoderError(f'{row.id}: no "problem" on this line and no --problem given')
        groups.setdefault(loadable(ref), []).append(row)
    return list(groups.items())


def loadable(ref: str) -> str:
    """``ref`` as :func:`~bcoder.problems.load.load_problem` takes it: a path or ``DATASET:ID``
    as is; a dataset problem id (``mbpp/11``, ``apps/test/4``) as ``mbpp:mbpp/11``."""
    if ":" in ref or Path(ref).expanduser().exists() or "/" not in ref:
        return ref
    return f"{ref.split('/', 1)[0]}:{ref}"


def by_problem(rows: list[ProgramRow], problems: list[Problem]) -> dict[str, list[str]]:
    """{problem id: [code, ...]} for the rows that name one of ``problems`` (by reference, id or
    dataset id); rows of other problems are left out."""
    keys: dict[str, str] = {}
    for p in problems:
        keys[p.id] = p.id
        if p.metadata.get("dataset_id") is not None:
            keys.setdefault(str(p.metadata["dataset_id"]), p.id)
    out: dict[str, list[str]] = {}
    for row in rows:
        ref = row.problem or ""
        pid = keys.get(ref) or keys.get(ref.rsplit(":", 1)[-1])
        if pid is not None:
            out.setdefault(pid, []).append(row.code)
    return out


def program_row(dataset: str, problem_id: str, code: str) -> dict[str, str]:
    """A line of a programs file for a problem of ``dataset`` (a name or a problems file)."""
    return {"problem": f"{dataset}:{problem_id}", "code": code}
