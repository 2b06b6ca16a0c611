"""The request ledger: every teacher answer is recorded before it is used, so nothing is paid twice.

A request id is a hash of what determines the request: the kind of step, the prompt template's
hash, the sampled seed/machine ids, the round and slot, the decoding parameters, the teacher model
and the prompt text itself. The pipelines are deterministic (seeded per round), so re-running a
job on the same work dir regenerates the same requests with the same ids; those already in the
ledger are answered from it and never sent again.

Storage: append-only JSONL (``ledger.jsonl``), one record per answer (id, parameters, the prompt's
hash and its last 1500 characters, the response with tokens and cost), flushed and fsync'ed before
the answer is used. A torn last line (crash mid-write) is cut off when the ledger is reopened.
A ``filelock`` guards the job dir against two workers running the same job at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.ml.teachers.interface import DecodingParams, Teacher, TeacherRequest, TeacherResponse


def request_id(*, kind: str, template_hash: str, seed_ids: Sequence[str], round_idx: int, slot: int,
               params: DecodingParams, model: str, prompt: str) -> str:
    """Deterministic id of one teacher request."""
    payload = {"kind": kind, "template": template_hash, "seed_ids": list(seed_ids), "round": round_idx,
               "slot": slot, "params": params.as_dict(), "model": model,
               "prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest()}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:32]


PROMPT_TAIL_CHARS = 1500  # the few-shot templates are long and fixed: keep the variable end only


class BudgetExceeded(Exception):
    """Sending the next requests would take the job over its budget."""


class Ledger:
    """Append-only record of teacher answers keyed by request id."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._answers: dict[str, TeacherResponse] = {}
        self._totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        self._load()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open until close()
        self.sent_this_run = 0

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last record from a crash: cut it off
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._remember(rec["request_id"], TeacherResponse.from_dict(rec["response"]))

    def __contains__(self, rid: str) -> bool:
        return rid in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, rid: str) -> TeacherResponse | None:
        return self._answers.get(rid)

    def record(self, req: TeacherRequest, resp: TeacherResponse, meta: dict[str, Any] | None = None) -> None:
        """Append one answer durably (flush + fsync) before anyone uses it."""
        rec = {"request_id": req.request_id, "recorded_at": time.time(), "meta": meta or {},
               "params": req.params.as_dict(), "prompt_sha256": hashlib.sha256(req.prompt.encode()).hexdigest(),
               "prompt_tail": req.prompt[-PROMPT_TAIL_CHARS:], "response": resp.as_dict()}
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._remember(req.request_id, resp)

    def _remember(self, rid: str, resp: TeacherResponse) -> None:
        old = self._answers.get(rid)
        for sign, r in ((-1, old), (1, resp)):
            if r is not None:
                self._totals["requests"] += sign
                self._totals["prompt_tokens"] += sign * r.prompt_tokens
                self._totals["completion_tokens"] += sign * r.completion_tokens
                self._totals["cost_usd"] += sign * r.cost_usd
        self._answers[rid] = resp

    def totals(self) -> dict[str, float]:
        """Requests, tokens and cost of every recorded answer (all runs of the job)."""
        return dict(self._totals)

    def close(self) -> None:
        self._fh.close()


class LedgeredTeacher:
    """Answers from the ledger when it can; sends the rest, recording each answer as it arrives.

    Before sending, the projected spend (ledger total + estimate for the new requests) is checked
    against ``budget_usd``; going over raises ``BudgetExceeded`` and nothing is sent. The estimate
    is the mean cost of recorded answers of the same kind, or the teacher's worst case when none.
    """

    def __init__(self, teacher: Teacher, ledger: Ledger, budget_usd: float | None = None):
        self.teacher = teacher
        self.ledger = ledger
        self.budget_usd = budget_usd
        self._kind_costs: dict[str, tuple[int, float]] = {}  # kind -> (answers seen, their cost)

    def complete(self, requests: Sequence[TeacherRequest], kind: str) -> tuple[list[TeacherResponse], int]:
        """(responses in request order, how many were actually sent)."""
        new = [r for r in requests if r.request_id not in self.ledger]
        if new and self.budget_usd is not None:
            spent = self.ledger.totals()["cost_usd"]
            seen, cost = self._kind_costs.get(kind, (0, 0.0))
            if seen:
                estimate = len(new) * cost / seen
            else:
                estimate = sum(self.teacher.estimate_cost(r) for r in new)
            if spent + estimate > self.budget_usd + 1e-12:
                raise BudgetExceeded(f"spent ${spent:.4f}; the next {len(new)} requests would cost about "
                                     f"${estimate:.4f}, over the budget of ${self.budget_usd:.4f}")
        if new:
            by_id = {r.request_id: r for r in new}

            def on_response(resp: TeacherResponse) -> None:
                self.ledger.record(by_id[resp.request_id], resp, {"kind": kind})
                self.ledger.sent_this_run += 1

            answers = self.teacher.complete(new, on_response=on_response)
            for resp in answers:  # a teacher that skipped the callback: record before use anyway
                if resp.request_id not in self.ledger:
                    on_response(resp)
        out = [self.ledger.get(r.request_id) for r in requests]
        answered = [r for r in out if r is not None and r.finish_reason != "error"]
        seen, cost = self._kind_costs.get(kind, (0, 0.0))
        self._kind_costs[kind] = (seen + len(answered), cost + sum(r.cost_usd for r in answered))
        return out, len(new)
