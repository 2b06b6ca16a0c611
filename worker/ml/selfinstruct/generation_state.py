"""What one generation job carries from round to round, and the shared instruction screening."""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from contracts.configs import GenerationJobConfig
from worker.ml.selfinstruct.filters import InstructionFilter
from worker.ml.selfinstruct.ledger import LedgeredTeacher
from worker.ml.selfinstruct.rouge import RougeFilter
from worker.ml.teachers.interface import TeacherResponse


@dataclass
class GenerationState:
    cfg: GenerationJobConfig
    seeds: list[dict]
    teacher: LedgeredTeacher
    model: str
    instruction_filter: InstructionFilter
    rouge: RougeFilter | None
    machine: list[dict] = field(default_factory=list)  # accepted instructions: {"id", "instruction", ...}

    def rng(self, round_idx: int, slot: int, purpose: str = "") -> random.Random:
        """A generator seeded by (job seed, round, slot, purpose): replays draw the same samples."""
        digest = hashlib.sha256(f"{self.cfg.seed}:{round_idx}:{slot}:{purpose}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass
class RoundResult:
    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    responses: list[TeacherResponse] = field(default_factory=list)
    sent: int = 0
    accepted_instructions: int = 0

    def reject(self, row: dict[str, Any], filter_name: str, **detail: Any) -> None:
        self.rejects.append({**row, "filter": filter_name, **detail})

    @property
    def rejected_by_filter(self) -> dict[str, int]:
        return dict(Counter(r["filter"] for r in self.rejects))


def screen_instruction(state: GenerationState, instruction: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run the instruction filters, then ROUGE-L against the pool (which a pass joins).

    Returns ``(rejection, verdicts)``: ``rejection`` is None when kept, else
    ``{"filter": name, ...}`` with the nearest pool instruction and its score for ROUGE rejects.
    """
    name = state.instruction_filter.rejection(instruction)
    if name is not None:
        return {"filter": name}, {}
    verdicts: dict[str, Any] = {n: "pass" for n in state.instruction_filter.applied()}
    if state.rouge is not None:
        verdict = state.rouge.add(instruction)
        if not verdict.kept:
            return {"filter": "rouge_l", "nearest": state.rouge.texts[verdict.nearest_index],
                    "score": round(verdict.score, 6)}, verdicts
        verdicts["rouge_l"] = f"pass (<= {state.cfg.rouge_threshold})"
    return None, verdicts
