"""run_generation end to end: outputs, provenance, events, crash/resume, budget pause, cancel."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from filelock import FileLock

from contracts.configs import GenerationFilters, GenerationJobConfig
from tests.worker.ml.selfinstruct.conftest import ScriptedTeacher, answer
from tests.worker.ml.selfinstruct.openai_stub import start_stub_server
from worker.ml.selfinstruct.filters import InstructionFilter
from worker.ml.selfinstruct.pipeline import JobAlreadyRunning, run_generation
from worker.ml.selfinstruct.rouge import RougeFilter
from worker.ml.selfinstruct.seeds import load_seed_tasks
from worker.ml.teachers.continuation import CHAT_CONTINUE_INSTRUCTION
from worker.ml.teachers.interface import TeacherResponse
from worker.ml.teachers.remote import OpenAITeacher


def cfg(method="self_instruct", **kw) -> GenerationJobConfig:
    return GenerationJobConfig(method=method, **{"teacher": {"model": "scripted-teacher"}, "num_instructions": 20, **kw})


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def seeds():
    return load_seed_tasks()


@pytest.mark.parametrize("method", ["self_instruct", "alpaca"])
def test_rows_pass_filters_and_carry_provenance(tmp_path, seeds, method):
    events = []
    out = run_generation(cfg=cfg(method), seed_tasks=seeds, teacher=ScriptedTeacher(), work_dir=tmp_path,
                         on_event=events.append)
    assert out["status"] == "succeeded" and out["n_instructions"] >= 20
    rows = read_jsonl(out["dataset_path"])
    assert len(rows) == out["n_kept"] > 0
    instructions = list(dict.fromkeys(r["instruction"] for r in rows))
    check = InstructionFilter(method, GenerationFilters())
    assert all(check.rejection(i) is None for i in instructions)
    pool = RougeFilter(0.7, pool=[s["instruction"] for s in seeds])
    assert all(pool.add(i).kept for i in instructions)  # no kept pair above 0.7, none near a seed
    prov = rows[0]["provenance"]
    assert prov["teacher_model"] == "scripted-teacher" and prov["method"] == method
    assert prov["round"] == 0 and len(prov["template_hash"]) == 16 and prov["seed_ids"]
    assert prov["verdicts"]["blacklist"] == "pass" and prov["verdicts"]["rouge_l"].startswith("pass")
    rejected = read_jsonl(out["rejected_path"])
    by_filter = Counter(r["filter"] for r in rejected)
    assert by_filter["blacklist"] > 0 and by_filter["rouge_l"] > 0
    rouge_rej = next(r for r in rejected if r["filter"] == "rouge_l")
    assert rouge_rej["score"] > 0.7 and rouge_rej["nearest"] in {s["instruction"] for s in seeds} | set(instructions)
    if method == "self_instruct":
        assert {"word_count", "write_a_program", "non_ascii_start", "invalid_instance", "duplicate_instance",
                "conflicting_instances"} <= set(by_filter)
        assert any(r["provenance"]["is_classification"] for r in rows)
        assert all(len([x for x in rows if x["provenance"]["task_id"] == t]) <= 5
                   for t in {r["provenance"]["task_id"] for r in rows})
    else:
        assert by_filter["unparseable"] > 0 and any(r["input"] == "" for r in rows) and any(r["input"] for r in rows)
    assert len(events) == out["rounds"]
    ev = events[0]
    assert {"round", "accepted", "rejected_by_filter", "prompt_tokens", "completion_tokens", "cost_usd"} <= set(ev)
    assert sum(e["accepted"] for e in events) == out["n_kept"]
    assert out["tokens"]["total"] == sum(e["prompt_tokens"] + e["completion_tokens"] for e in events)
    assert json.loads((tmp_path / "config.json").read_text())["method"] == method


@pytest.mark.parametrize("method", ["self_instruct", "alpaca"])
def test_crash_then_resume_never_resends_and_completes(tmp_path, seeds, method):
    job = cfg(method, num_instructions=40)
    clean = run_generation(cfg=job, seed_tasks=seeds, teacher=ScriptedTeacher(), work_dir=tmp_path / "clean")
    crashing = ScriptedTeacher(fail_after=9)
    with pytest.raises(RuntimeError, match="worker killed"):
        run_generation(cfg=job, seed_tasks=seeds, teacher=crashing, work_dir=tmp_path / "job")
    assert len(crashing.sent) == 9
    counting = ScriptedTeacher()
    resumed = run_generation(cfg=job, seed_tasks=seeds, teacher=counting, work_dir=tmp_path / "job")
    assert not set(crashing.sent) & set(counting.sent)  # nothing answered was sent again
    assert len(counting.sent) == len(set(counting.sent))
    assert resumed["requests_replayed"] == 9 and resumed["requests_sent"] == len(counting.sent)
    assert resumed["status"] == "succeeded"
    assert (tmp_path / "job" / "dataset.jsonl").read_text() == (tmp_path / "clean" / "dataset.jsonl").read_text()
    # a third run sends nothing at all
    idle = ScriptedTeacher()
    again = run_generation(cfg=job, seed_tasks=seeds, teacher=idle, work_dir=tmp_path / "job")
    assert idle.sent == [] and again["n_kept"] == clean["n_kept"]


def test_budget_pauses_then_resumes_with_more_budget(tmp_path, seeds):
    teacher = ScriptedTeacher(price_per_request=0.01)
    paused = run_generation(cfg=cfg("alpaca", num_instructions=60, budget_usd=0.07), seed_tasks=seeds,
                            teacher=teacher, work_dir=tmp_path)
    assert paused["status"] == "paused_budget" and "budget" in paused["message"]
    assert paused["cost_usd"] <= 0.07 + 1e-9 and len(teacher.sent) == 5
    more = ScriptedTeacher(price_per_request=0.01)
    done = run_generation(cfg=cfg("alpaca", num_instructions=60, budget_usd=1.0), seed_tasks=seeds,
                          teacher=more, work_dir=tmp_path)
    assert done["status"] == "succeeded" and not set(more.sent) & set(teacher.sent)
    assert done["cost_usd"] == pytest.approx(0.01 * (len(teacher.sent) + len(more.sent)))


def test_cancel_keeps_what_is_done(tmp_path, seeds):
    calls = []
    out = run_generation(cfg=cfg("alpaca", num_instructions=500), seed_tasks=seeds, teacher=ScriptedTeacher(),
                         work_dir=tmp_path, should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert out["status"] == "cancelled" and out["rounds"] == 2
    assert len(read_jsonl(out["dataset_path"])) == out["n_kept"] > 0


def test_max_rounds_stops_a_hopeless_teacher(tmp_path, seeds):
    class Useless(ScriptedTeacher):
        def complete(self, requests, on_response=None):
            out = [TeacherResponse(r.request_id, " x", "stop", model=self.model) for r in requests]
            for resp in out:
                on_response(resp)
            return out

    out = run_generation(cfg=cfg("self_instruct", max_rounds=3), seed_tasks=seeds, teacher=Useless(),
                         work_dir=tmp_path)
    assert out["status"] == "succeeded" and out["rounds"] == 3 and out["n_instructions"] == 0
    assert "max_rounds" in out["message"]


def test_teacher_overrides_reach_the_requests(tmp_path, seeds):
    seen = []

    class Recording(ScriptedTeacher):
        def complete(self, requests, on_response=None):
            seen.extend(requests)
            return super().complete(requests, on_response)

    job = cfg("self_instruct", num_instructions=3, teacher={"model": "m", "max_tokens": 200, "temperature": 0.3})
    run_generation(cfg=job, seed_tasks=seeds, teacher=Recording(), work_dir=tmp_path)
    by_kind = {}
    for r in seen:
        key = "bootstrap" if r.prompt.startswith("Come up with a series") else (
            "is_clf" if r.prompt.startswith("Can the following") else "instances")
        by_kind.setdefault(key, set()).add((r.params.max_tokens, r.params.temperature))
    assert by_kind == {"bootstrap": {(200, 0.3)}, "is_clf": {(3, 0.0)}, "instances": {(200, 0.0)}}


def test_second_worker_on_same_dir_is_refused(tmp_path, seeds):
    with FileLock(str(tmp_path / "generation.lock")), pytest.raises(JobAlreadyRunning):
        run_generation(cfg=cfg(), seed_tasks=seeds, teacher=ScriptedTeacher(), work_dir=tmp_path)


def test_chinese_seeds_use_cjk_dedup(tmp_path, seeds):
    zh = [s for s in seeds if any("\u4e00" <= ch <= "\u9fff" for ch in s["instruction"])]
    assert len(zh) >= 10

    class EchoSeeds(ScriptedTeacher):
        """Answers every bootstrap prompt with its own (Chinese) examples, lightly changed."""

        def complete(self, requests, on_response=None):
            out = super().complete(requests, on_response=None)
            for req, resp in zip(requests, out):
                if req.prompt.startswith("Come up with a series"):
                    items = [line.split(". ", 1)[1] + "吧" for line in req.prompt.split("\n")[1:-1]]
                    resp.text = " " + items[0] + "".join(f"\n{10 + i}. {it}" for i, it in enumerate(items[1:]))
                if on_response:
                    on_response(resp)
            return out

    job = cfg("self_instruct", num_instructions=5, max_rounds=2,
              filters=GenerationFilters(drop_non_ascii_start=False, count_words_by="tokens"))
    out = run_generation(cfg=job, seed_tasks=zh, teacher=EchoSeeds(), work_dir=tmp_path)
    rejected = read_jsonl(out["rejected_path"])
    assert any(r["filter"] == "rouge_l" and r["nearest"] in {s["instruction"] for s in zh} for r in rejected)
    assert out["n_instructions"] == 0  # every echo is a near-duplicate once CJK text is tokenised


def test_end_to_end_through_openai_sdk_and_http(tmp_path, seeds):
    server, stop = start_stub_server()
    try:
        def script(api, content, hit):
            prompt = content.split(CHAT_CONTINUE_INSTRUCTION + "\n\n", 1)[-1]
            return answer(prompt)

        server.script = script
        for api in ("completions", "chat"):
            teacher = OpenAITeacher(base_url=server.base_url, model="stub", api_key="sk-e2e", api=api,
                                    max_concurrency=3)
            out = run_generation(cfg=cfg("self_instruct", num_instructions=8), seed_tasks=seeds, teacher=teacher,
                                 work_dir=tmp_path / api)
            assert out["status"] == "succeeded" and out["n_kept"] > 0 and out["tokens"]["total"] > 0
            assert "sk-e2e" not in (tmp_path / api / "ledger.jsonl").read_text()
            assert "sk-e2e" not in (tmp_path / api / "config.json").read_text()
    finally:
        stop()
