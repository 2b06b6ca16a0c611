"""Self-Instruct, all four steps, one round at a time (yizhongw/self-instruct, faithful settings).

A round: (1) ``request_batch_size`` bootstrap prompts of 8 in-context instructions (up to 2
machine + the rest seeds, shuffled), parsed, filtered and ROUGE-deduplicated, accepted ones join
the pool at once; (2) each new instruction is classified (``Is it classification?``); (3) its
instances are generated output-first (classification) or input-first; (4) instances are parsed,
filtered (invalid, conflicting, duplicate) and at most ``max_instances_per_task`` sampled.
The published scripts ran each step over the whole set; running them per round gives the same
per-item decisions and lets a job stream progress and resume. Differences, all deliberate:
instance de-duplication keeps first occurrences (the original's ``set`` scrambled them), seed
tasks are not appended to the dataset (``--include_seed_tasks``), and kept instructions carry
filter verdicts rather than ``most_similar``/``avg_similarity_score``. The GPT-3 prompt/completion
encoding is ``finetune_format.to_prompt_completion``.
"""
from __future__ import annotations

from dataclasses import replace

from worker.ml.selfinstruct.filters import (
    dedupe_instances,
    has_conflicting_instances,
    invalid_instance_reason,
)
from worker.ml.selfinstruct.generation_state import GenerationState, RoundResult, screen_instruction
from worker.ml.selfinstruct.ledger import request_id
from worker.ml.selfinstruct.parsing import (
    parse_bootstrap_response,
    parse_classification_instances,
    parse_generation_instances,
    parse_is_clf,
)
from worker.ml.selfinstruct.step_prompts import (
    BOOTSTRAP_PARAMS,
    CLF_PARAMS,
    TEMPLATE_HASHES,
    build_bootstrap_prompt,
    build_instances_prompt,
    build_is_clf_prompt,
    instances_params,
    with_overrides,
)
from worker.ml.teachers.interface import TeacherRequest


def prompt_seed_pool(state: GenerationState) -> list[dict]:
    """Seeds used in prompts (and as the ROUGE reference pool): classification ones only if asked."""
    if state.cfg.use_clf_seed_tasks_only:
        return [s for s in state.seeds if s["is_classification"]]
    return state.seeds


def run_self_instruct_round(state: GenerationState, round_idx: int) -> RoundResult:
    res = RoundResult()
    new_tasks = _bootstrap_instructions(state, round_idx, res)
    _identify_classification(state, round_idx, new_tasks, res)
    raw = _generate_instances(state, round_idx, new_tasks, res)
    for task, resp in zip(new_tasks, raw):
        _filter_instances(state, round_idx, task, resp.text, resp.finish_reason, res)
    return res


def _bootstrap_instructions(state: GenerationState, round_idx: int, res: RoundResult) -> list[dict]:
    cfg = state.cfg
    clf_only = cfg.use_clf_seed_tasks_only
    template_key = "self_instruct.bootstrap_clf" if clf_only else "self_instruct.bootstrap"
    params = with_overrides(BOOTSTRAP_PARAMS, cfg.teacher.temperature, cfg.teacher.top_p, cfg.teacher.max_tokens)
    seeds = prompt_seed_pool(state)
    requests, sampled = [], []
    for slot in range(cfg.request_batch_size):
        rng = state.rng(round_idx, slot, "bootstrap")
        machine = rng.sample(state.machine, min(cfg.num_machine_instructions, len(state.machine)))
        picks = rng.sample(seeds, min(cfg.prompt_instructions - len(machine), len(seeds)))
        items = [(m["id"], m["instruction"]) for m in machine] + [(s["id"], s["instruction"]) for s in picks]
        rng.shuffle(items)
        prompt = build_bootstrap_prompt([text for _, text in items], classification=clf_only)
        ids = [i for i, _ in items]
        rid = request_id(kind="bootstrap", template_hash=TEMPLATE_HASHES[template_key], seed_ids=ids,
                         round_idx=round_idx, slot=slot, params=params, model=state.model, prompt=prompt)
        requests.append(TeacherRequest(rid, prompt, params))
        sampled.append(ids)
    responses, sent = state.teacher.complete(requests, kind="bootstrap")
    res.sent += sent
    res.responses += responses
    new_tasks = []
    for req, resp, ids in zip(requests, responses, sampled):
        base = {"stage": "instruction", "round": round_idx, "request_id": req.request_id}
        pieces = parse_bootstrap_response(resp.text, resp.finish_reason)
        if pieces is None:
            name = "teacher_error" if resp.finish_reason == "error" else "truncated_response"
            res.reject({**base, "instruction": None, "text": resp.text[:4000], "error": resp.error}, name)
            continue
        for inst in pieces:
            rejection, verdicts = screen_instruction(state, inst)
            if rejection is not None:
                res.reject({**base, "instruction": inst}, rejection.pop("filter"), **rejection)
                continue
            task = {"id": f"machine_{len(state.machine)}", "instruction": inst, "round": round_idx,
                    "request_id": req.request_id, "seed_ids": ids, "verdicts": verdicts,
                    "template_hash": TEMPLATE_HASHES[template_key]}
            state.machine.append(task)
            new_tasks.append(task)
    res.accepted_instructions = len(new_tasks)
    return new_tasks


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _identify_classification(state: GenerationState, round_idx: int, tasks: list[dict], res: RoundResult) -> None:
    for batch in _batches(tasks, state.cfg.request_batch_size):
        requests = []
        for task in batch:
            prompt = build_is_clf_prompt(task["instruction"])
            rid = request_id(kind="is_clf", template_hash=TEMPLATE_HASHES["self_instruct.is_clf"],
                             seed_ids=[task["id"]], round_idx=round_idx, slot=0, params=CLF_PARAMS,
                             model=state.model, prompt=prompt)
            requests.append(TeacherRequest(rid, prompt, CLF_PARAMS))
        responses, sent = state.teacher.complete(requests, kind="is_clf")
        res.sent += sent
        res.responses += responses
        for task, resp in zip(batch, responses):
            task["is_classification"] = parse_is_clf(resp.text)


def _generate_instances(state: GenerationState, round_idx: int, tasks: list[dict], res: RoundResult) -> list:
    out = []
    for batch in _batches(tasks, state.cfg.request_batch_size):
        params = instances_params(any(t["is_classification"] for t in batch), state.cfg.max_instances_per_task)
        cap = state.cfg.teacher.max_tokens
        if cap is not None and cap < params.max_tokens:  # the job's max_tokens also caps step 3 (slow teachers)
            params = replace(params, max_tokens=cap)
        requests = []
        for task in batch:
            key = "self_instruct.instances_clf" if task["is_classification"] else "self_instruct.instances_gen"
            prompt = build_instances_prompt(task["instruction"], task["is_classification"])
            rid = request_id(kind="instances", template_hash=TEMPLATE_HASHES[key], seed_ids=[task["id"]],
                             round_idx=round_idx, slot=0, params=params, model=state.model, prompt=prompt)
            task["instances_request_id"] = rid
            requests.append(TeacherRequest(rid, prompt, params))
        responses, sent = state.teacher.complete(requests, kind="instances")
        res.sent += sent
        res.responses += responses
        out += responses
    return out


def _filter_instances(state: GenerationState, round_idx: int, task: dict, text: str, finish_reason: str,
                      res: RoundResult) -> None:
    cfg = state.cfg
    parse = parse_classification_instances if task["is_classification"] else parse_generation_instances
    instances = parse(text, finish_reason)
    base = {"stage": "instance", "round": round_idx, "instruction": task["instruction"],
            "request_id": task["instances_request_id"]}
    if not instances:
        res.reject({**base, "input": None, "output": None, "text": text[:4000]}, "no_instances")
        return
    if cfg.filters.instance_filters:
        valid = []
        for inp, out in instances:
            reason = invalid_instance_reason(inp, out)
            if reason:
                res.reject({**base, "input": inp, "output": out}, "invalid_instance", detail=reason)
            else:
                valid.append((inp, out))
        if has_conflicting_instances(valid):
            for inp, out in valid:
                res.reject({**base, "input": inp, "output": out}, "conflicting_instances")
            return
        instances, dupes = dedupe_instances(valid)
        for inp, out in dupes:
            res.reject({**base, "input": inp, "output": out}, "duplicate_instance")
    picked = state.rng(round_idx, 0, f"sample:{task['id']}").sample(
        instances, min(len(instances), cfg.max_instances_per_task))
    for inp, out in instances:
        if (inp, out) not in picked:
            res.reject({**base, "input": inp, "output": out}, "over_max_instances")
    for inp, out in picked:
        res.rows.append({"instruction": task["instruction"], "input": inp, "output": out, "provenance": {
            "method": "self_instruct", "teacher_model": state.model, "round": round_idx,
            "template_hash": task["template_hash"], "seed_ids": task["seed_ids"], "task_id": task["id"],
            "is_classification": task["is_classification"],
            "request_ids": [task["request_id"], task["instances_request_id"]],
            "verdicts": {**task["verdicts"], **({"instance_filters": "pass"} if cfg.filters.instance_filters else {})},
        }})
