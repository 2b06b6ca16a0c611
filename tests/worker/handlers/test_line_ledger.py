"""The batch line ledger: what a restarted worker must not redo survives a torn last line."""
from __future__ import annotations

import json

from worker.handlers.line_ledger import LineLedger


def ok_line(cid: str, prompt: int = 3, completion: int = 2) -> dict:
    return {"custom_id": cid, "error": None, "response": {"status_code": 200, "body": {
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}}}


def err_line(cid: str) -> dict:
    return {"custom_id": cid, "error": {"code": "model_not_found", "message": "x"},
            "response": {"status_code": 404, "body": {}}}


def test_lines_are_split_counted_and_remembered(tmp_path):
    ledger = LineLedger(tmp_path)
    for line in (ok_line("a"), err_line("b"), ok_line("c", 5, 7)):
        ledger.write(line)
    assert ledger.sync() and not ledger.sync()  # nothing new the second time
    ledger.close()
    again = LineLedger(tmp_path)
    assert again.done == {"a", "b", "c"} and again.resumed == 3
    assert (again.completed, again.failed) == (2, 1)
    assert (again.prompt_tokens, again.completion_tokens) == (8, 9)
    again.close()


def test_a_torn_last_line_is_cut_off_and_redone(tmp_path):
    whole = json.dumps(ok_line("a")) + "\n"
    (tmp_path / "output.jsonl").write_text(whole + json.dumps(ok_line("b"))[:20])
    ledger = LineLedger(tmp_path)
    assert ledger.done == {"a"}
    assert (tmp_path / "output.jsonl").read_text() == whole
    ledger.write(ok_line("b"))
    ledger.close()
    lines = (tmp_path / "output.jsonl").read_text().splitlines()
    assert [json.loads(x)["custom_id"] for x in lines] == ["a", "b"]
