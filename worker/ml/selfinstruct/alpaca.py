"""Stanford Alpaca's one-call variant, one round at a time (tatsu-lab/stanford_alpaca).

Each prompt is ``prompt.txt`` plus 3 examples drawn from the seeds only, and asks for 20 tasks
(items 4 to 19 come back: up to 16 instruction/input/output triples). Blocks are parsed, filtered
(18-word blacklist, no capitalisation) and ROUGE-deduplicated against seeds and kept ones.
The published script never seeded ``random``; here each prompt's draw is seeded per job, round
and slot so a resumed job rebuilds the same requests. Its ``logit_bias={"50256": -100}`` (a GPT-2
token id banning ``<|endoftext|>``) is not sent: token ids differ between teachers.
Not reproduced: ``most_similar_instructions``/``avg_similarity_score`` for kept items (the fast
filter never scores far-apart pairs); rejects carry their nearest pool instruction instead.
"""
from __future__ import annotations

from worker.ml.selfinstruct.generation_state import GenerationState, RoundResult, screen_instruction
from worker.ml.selfinstruct.ledger import request_id
from worker.ml.selfinstruct.parsing import parse_alpaca_response
from worker.ml.selfinstruct.step_prompts import (
    ALPACA_PARAMS,
    TEMPLATE_HASHES,
    build_alpaca_prompt,
    with_overrides,
)
from worker.ml.teachers.interface import TeacherRequest


def seed_example(task: dict) -> dict:
    """A seed task as Alpaca uses it: its first instance."""
    first = task["instances"][0]
    return {"instruction": task["instruction"], "input": first["input"], "output": first["output"]}


def run_alpaca_round(state: GenerationState, round_idx: int) -> RoundResult:
    cfg = state.cfg
    res = RoundResult()
    params = with_overrides(ALPACA_PARAMS, cfg.teacher.temperature, cfg.teacher.top_p, cfg.teacher.max_tokens)
    thash = TEMPLATE_HASHES["alpaca.generate"]
    requests, sampled = [], []
    for slot in range(cfg.request_batch_size):
        picks = state.rng(round_idx, slot, "alpaca").sample(state.seeds, min(cfg.prompt_instructions, len(state.seeds)))
        prompt = build_alpaca_prompt([seed_example(t) for t in picks])
        ids = [t["id"] for t in picks]
        rid = request_id(kind="alpaca", template_hash=thash, seed_ids=ids, round_idx=round_idx, slot=slot,
                         params=params, model=state.model, prompt=prompt)
        requests.append(TeacherRequest(rid, prompt, params))
        sampled.append(ids)
    responses, res.sent = state.teacher.complete(requests, kind="alpaca")
    res.responses = responses
    for req, resp, ids in zip(requests, responses, sampled):
        base = {"stage": "instruction", "round": round_idx, "request_id": req.request_id}
        if resp.finish_reason == "error":
            res.reject({**base, "instruction": None, "text": "", "error": resp.error}, "teacher_error")
            continue
        items, unparseable = parse_alpaca_response(resp.text, resp.finish_reason, len(ids))
        for block in unparseable:
            res.reject({**base, "instruction": None, "text": block[:4000]}, "unparseable")
        for item in items:
            row = {"instruction": item.instruction, "input": item.input, "output": item.output}
            rejection, verdicts = screen_instruction(state, item.instruction)
            if rejection is not None:
                res.reject({**base, **row}, rejection.pop("filter"), **rejection)
                continue
            state.machine.append({"id": f"machine_{len(state.machine)}", "instruction": item.instruction})
            res.rows.append({**row, "provenance": {
                "method": "alpaca", "teacher_model": state.model, "round": round_idx, "template_hash": thash,
                "seed_ids": ids, "request_ids": [req.request_id], "verdicts": verdicts}})
    res.accepted_instructions = len(res.rows)
    return res
