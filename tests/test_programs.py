"""Programs files: one schema for rank, eval export / --rank-only and train import."""

import json

import pytest

from bcoder.core.errors import BcoderError
from bcoder.problems.load import load_problem, load_problems
from bcoder.problems.programs import (
    by_problem,
    by_reference,
    loadable,
    program_row,
    read_programs,
)


def _write(path, *rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_rows_their_ids_and_the_one_problem_for_the_file(tmp_path):
    f = _write(tmp_path / "c.jsonl", {"problem": "a.txt", "code": "x = 1", "id": "m/1"}, "",
               {"code": "y = 2"})  # fmt: skip
    programs = read_programs(f)
    assert [(r.problem, r.code, r.id) for r in programs.rows] == [
        ("a.txt", "x = 1", "m/1"),
        (None, "y = 2", f"{f}:3"),
    ]
    assert programs.notes == []
    groups = by_reference(programs.rows, "b.txt")
    assert [(ref, [r.code for r in rows]) for ref, rows in groups] == [
        ("a.txt", ["x = 1"]),
        ("b.txt", ["y = 2"]),
    ]
    with pytest.raises(BcoderError, match=rf'{f}:3: no "problem"'):
        by_reference(programs.rows, None)


def test_older_files_read_with_a_note(tmp_path):
    f = _write(tmp_path / "old.jsonl", {"problem_id": "mbpp/11", "code": "a"},
               {"task_id": 12, "completion": "b"})  # fmt: skip
    programs = read_programs(f)
    assert [(r.problem, r.code) for r in programs.rows] == [("mbpp/11", "a"), ("12", "b")]
    assert len(programs.notes) == 3 and all(n.startswith(f"{f}: read ") for n in programs.notes)
    assert any('"problem_id" as "problem"' in n for n in programs.notes)
    # an older export's bare problem id is made loadable for `bcoder rank`
    assert loadable("mbpp/11") == "mbpp:mbpp/11" and loadable("mbpp:11") == "mbpp:11"
    assert load_problem(loadable("mbpp/11")).id == "mbpp/11"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"problem": "p"}', 'expected a string "code"'),
        ('{"problem": ["p"], "code": "x"}', '"problem" must be a string'),
    ],
)
def test_bad_lines_are_one_line_errors(tmp_path, line, message):
    f = _write(tmp_path / "bad.jsonl", {"code": "ok"}, line)
    with pytest.raises(BcoderError, match=f"{f}:2: .*{message}"):
        read_programs(f)


def test_an_empty_or_missing_file(tmp_path):
    with pytest.raises(BcoderError, match="no programs"):
        read_programs(_write(tmp_path / "empty.jsonl", ""))
    with pytest.raises(BcoderError, match="no such file"):
        read_programs(tmp_path / "missing.jsonl")


def test_a_selection_matches_references_ids_and_dataset_ids(tmp_path):
    problems = list(load_problems("mbpp", ids=["11", "12", "13"]))
    f = _write(
        tmp_path / "p.jsonl",
        program_row("mbpp", "mbpp/11", "a"),  # what eval export and select write
        {"problem": "mbpp/12", "code": "b"},  # a Problem.id
        {"problem": "13", "code": "c"},  # a dataset id
        {"problem": "mbpp:mbpp/14", "code": "d"},  # not selected: left out
    )
    assert by_problem(read_programs(f).rows, problems) == {
        "mbpp/11": ["a"],
        "mbpp/12": ["b"],
        "mbpp/13": ["c"],
    }
    ref = program_row("mbpp", "mbpp/11", "a")["problem"]
    assert load_problem(ref).id == "mbpp/11"  # and `bcoder rank` loads what export wrote
