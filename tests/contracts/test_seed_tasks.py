"""Seed-task files: every bad line named with its 1-based line number (blank lines counted)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.seed_tasks import SeedFileError, parse_seed_file


def task(i: int, **kw) -> dict:
    return {"id": f"t{i}", "instruction": f"Do task number {i}.", "instances": [{"input": "", "output": "ok"}], **kw}


def lines(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


def errors_of(data: bytes) -> list[tuple[int, str]]:
    with pytest.raises(SeedFileError) as info:
        parse_seed_file(data)
    return [(e.line, e.code) for e in info.value.errors]


def test_a_good_file_is_normalised():
    out = parse_seed_file(lines(task(0), b"", task(1, is_classification=True)))
    assert [t["id"] for t in out] == ["t0", "t1"] and out[1]["is_classification"] is True


def test_every_bad_line_is_named():
    data = lines(task(0), b"", b"{not json", {"instruction": "No instances"}, task(4), [1, 2], b"\xff\xfe")
    assert errors_of(data) == [(3, "invalid_json"), (4, "invalid_seed_task"), (6, "invalid_seed_task"),
                               (7, "invalid_encoding")]
    with pytest.raises(SeedFileError, match=r"line 4: 'instances' must be"):
        parse_seed_file(data)


def test_duplicate_ids_name_the_second_line():
    assert errors_of(lines(task(0), task(1), b"", task(0))) == [(4, "invalid_seed_task")]


def test_empty_and_oversized():
    assert errors_of(b"\n \n") == [(0, "empty_file")]
    with pytest.raises(SeedFileError) as info:
        parse_seed_file(lines(task(0), task(1, name="x" * 500)), max_line_bytes=200)
    assert [(e.line, e.code) for e in info.value.errors] == [(2, "line_too_long")]


def test_deep_nesting_is_named_not_raised():
    assert errors_of(lines(task(0), b"[" * 100_000 + b"]" * 100_000)) == [(2, "json_too_deep")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.just(b"[" * 5000), st.just(json.dumps(task(0)).encode())),
                max_size=5))
def test_whatever_the_bytes_a_seed_file_parses_or_names_its_lines(parts):
    data = b"\n".join(parts)
    try:
        parse_seed_file(data)
    except SeedFileError as exc:
        assert exc.errors and all(0 <= e.line <= data.count(b"\n") + 1 for e in exc.errors)
