"""The ledger: durable, torn-line tolerant, deterministic ids, budget checks before sending."""
from __future__ import annotations

import pytest

from tests.worker.ml.selfinstruct.conftest import ScriptedTeacher
from worker.ml.selfinstruct.ledger import BudgetExceeded, Ledger, LedgeredTeacher, request_id
from worker.ml.teachers.interface import DecodingParams, TeacherRequest

P = DecodingParams(max_tokens=10, temperature=0.7, top_p=0.5)


def rid(**kw):
    base = {"kind": "bootstrap", "template_hash": "t", "seed_ids": ["a", "b"], "round_idx": 0, "slot": 0,
            "params": P, "model": "m", "prompt": "p"}
    return request_id(**{**base, **kw})


def test_request_id_is_deterministic_and_sensitive():
    assert rid() == rid()
    others = [rid(seed_ids=["b", "a"]), rid(round_idx=1), rid(slot=1), rid(template_hash="u"), rid(model="n"),
              rid(prompt="q"), rid(params=DecodingParams(max_tokens=11, temperature=0.7, top_p=0.5))]
    assert len({rid(), *others}) == 8


def _req(i):
    return TeacherRequest(f"id{i}", "Come up with a series of tasks:\n1. Do a thing now\n2.", P)


def test_ledger_answers_recorded_requests_without_sending(tmp_path):
    teacher = ScriptedTeacher()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first, sent = LedgeredTeacher(teacher, ledger).complete([_req(0), _req(1)], kind="bootstrap")
    assert sent == 2 and teacher.sent == ["id0", "id1"]
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.jsonl")
    again, sent = LedgeredTeacher(teacher, reopened).complete([_req(1), _req(0), _req(2)], kind="bootstrap")
    assert sent == 1 and teacher.sent == ["id0", "id1", "id2"]
    assert [r.text for r in again[:2]] == [first[1].text, first[0].text]


def test_torn_last_line_is_cut_and_appends_stay_valid(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    LedgeredTeacher(ScriptedTeacher(), ledger).complete([_req(0)], kind="bootstrap")
    ledger.close()
    with open(path, "a") as f:
        f.write('{"request_id": "id1", "resp')  # crash mid-write
    ledger = Ledger(path)
    assert "id0" in ledger and "id1" not in ledger
    LedgeredTeacher(ScriptedTeacher(), ledger).complete([_req(1)], kind="bootstrap")
    ledger.close()
    assert len(Ledger(path)) == 2


def test_budget_is_checked_before_sending(tmp_path):
    teacher = ScriptedTeacher(price_per_request=0.4)
    lt = LedgeredTeacher(teacher, Ledger(tmp_path / "l.jsonl"), budget_usd=1.0)
    lt.complete([_req(0), _req(1)], kind="bootstrap")  # 0.8 projected: fine
    with pytest.raises(BudgetExceeded):
        lt.complete([_req(2)], kind="bootstrap")  # 0.8 + 0.4 > 1.0
    assert teacher.sent == ["id0", "id1"]
    lt.complete([_req(0)], kind="bootstrap")  # already answered: free, no check needed
