"""run_batch (OpenAI batch lines, errors, resume, stop) and run_eval (report) on the tiny model."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.batch_records import BatchRequest
from contracts.configs import SamplingParams
from contracts.decoding import DecodeRequest, ModelTarget
from contracts.records import Example
from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.decoding.request_prompts import CHAT_TEMPLATE
from worker.ml.evaluation.batch_run import run_batch
from worker.ml.evaluation.eval_run import run_eval

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures


@pytest.fixture
def targets(tiny_adapters) -> dict[str, ModelTarget]:
    return {"base": ModelTarget("base", None), "ft-a": ModelTarget("ft-a", tiny_adapters["A"]),
            "ft-b": ModelTarget("ft-b", tiny_adapters["B"])}


def chat(custom_id: str, model: str, text: str, **kw) -> BatchRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 6, "temperature": 0, **kw}
    return BatchRequest(0, custom_id, "/v1/chat/completions", body)


def test_batch_mixes_models_and_isolates_bad_lines(tiny_engine, targets):
    requests = [chat(f"r{i}", m, f"Tell me about {i}") for i, m in enumerate(["base", "ft-a", "ft-b"] * 2)]
    requests.insert(2, chat("unknown", "nope", "x"))
    requests.insert(4, chat("bad", "base", "x", temperature=7))
    requests.append(BatchRequest(9, "cmpl", "/v1/completions", {"model": "ft-a", "prompt": "Once", "max_tokens": 4,
                                                                "temperature": 0}))
    lines = []
    counts = run_batch(tiny_engine, requests, targets.__getitem__, set(), lines.append, batch_size=4)
    assert (counts.completed, counts.failed, counts.skipped) == (7, 2, 0)
    by_id = {line["custom_id"]: line for line in lines}
    assert by_id["unknown"]["error"]["code"] == "model_not_found"
    assert by_id["unknown"]["response"]["status_code"] == 404
    assert by_id["bad"]["response"]["body"]["error"]["param"] == "temperature"
    for req in requests:
        line = by_id[req.custom_id]
        if line["error"]:
            continue
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and body["usage"]["total_tokens"] > 0
        target = targets[req.body["model"]]
        key = "messages" if "messages" in req.body else "prompt"
        alone = tiny_engine.generate([DecodeRequest(**{key: req.body[key]}, adapter_dir=target.adapter_dir,
                                                        max_new_tokens=req.body["max_tokens"])])[0].text
        got = body["choices"][0]["message"]["content"] if key == "messages" else body["choices"][0]["text"]
        assert got == alone
    assert counts.completion_tokens == sum(by_id[r.custom_id]["response"]["body"]["usage"]["completion_tokens"]
                                           for r in requests if not by_id[r.custom_id]["error"])


def test_batch_resumes_and_stops(tiny_engine, targets):
    requests = [chat(f"r{i}", "ft-a", f"Item {i}") for i in range(6)]
    lines = []
    counts = run_batch(tiny_engine, requests, targets.__getitem__, {"r0", "r1"}, lines.append, batch_size=2)
    assert counts.skipped == 2 and sorted(line["custom_id"] for line in lines) == ["r2", "r3", "r4", "r5"]
    calls = iter([False, True])
    lines = []
    counts = run_batch(tiny_engine, requests, targets.__getitem__, set(), lines.append,
                       should_stop=lambda: next(calls, True), batch_size=2)
    assert counts.stopped and [line["custom_id"] for line in lines] == ["r0", "r1"]


def test_eval_report_scores_each_model(tiny_engine, targets):
    examples = [Example("Repeat the word cat.", "", "cat", line=1), Example("Add.", "2 and 3", "5", line=2),
                Example("Say hi.", "", "", line=3)]
    progress = []
    report = run_eval(tiny_engine, examples, [targets["base"], targets["ft-a"], targets["ft-b"]],
                      ["rouge_l", "exact_match", "reference_loss", "judge"], on_progress=lambda d, t: progress.append((d, t)),
                      sampling=SamplingParams(max_new_tokens=5), judge=lambda prompts: ["Rating: [[3]]"] * len(prompts), batch_size=4)
    assert progress[-1] == (9, 9)
    assert [m["name"] for m in report["models"]] == ["base", "ft-a", "ft-b"]
    for model in report["models"]:
        scores = model["scores"]
        assert 0 <= scores["rouge_l"] <= 1 and scores["exact_match"] in (0.0, 0.5, 1.0)
        assert scores["judge"] == 3.0 and scores["reference_loss"] > 0 and scores["perplexity"] > 1
        assert model["errors"] == 0 and model["examples"] == 3
    row = report["examples"][0]
    assert set(row["outputs"]) == {"base", "ft-a", "ft-b"} and row["reference"] == "cat"
    texts = {name: out["text"] for name, out in row["outputs"].items()}
    assert len(set(texts.values())) == 3
    assert "rouge_l" not in report["examples"][2]["outputs"]["base"]  # no reference, no score
    assert report["models"][2]["prompt_template"] is None  # ft-b: chat via its lorafleet.json
    assert tiny_engine.prompt_template_for(targets["ft-b"].adapter_dir) == CHAT_TEMPLATE


def test_eval_resumes_from_earlier_generations_and_reports_each_chunk(tiny_engine, targets):
    examples = [Example(f"Repeat the number {k}.", "", str(k), line=k + 1) for k in range(5)]
    models = [targets["base"], targets["ft-a"]]
    kw = {"sampling": SamplingParams(max_new_tokens=4), "batch_size": 3}
    chunks, calls = [], iter([False, False, True])
    first = run_eval(tiny_engine, examples, models, ["rouge_l"], on_chunk=chunks.append,
                     should_stop=lambda: next(calls, True), **kw)
    assert first["stopped"] and [len(c) for c in chunks] == [3, 3]
    done = dict(pair for chunk in chunks for pair in chunk)
    generated = []
    real_generate = tiny_engine.generate
    tiny_engine.generate = lambda reqs, **k: generated.append(len(reqs)) or real_generate(reqs, **k)
    try:
        later, progress = [], []
        resumed = run_eval(tiny_engine, examples, models, ["rouge_l"], done=done, on_chunk=later.append,
                           on_progress=lambda d, t: progress.append((d, t)), **kw)
    finally:
        del tiny_engine.generate
    assert sum(generated) == 10 - 6 and progress[-1] == (10, 10)  # only the 4 missing generations ran
    assert not set(done) & {pair for chunk in later for pair, _ in chunk}
    whole = run_eval(tiny_engine, examples, models, ["rouge_l"], **kw)
    assert not resumed["stopped"] and resumed["models"] == whole["models"]
    assert resumed["examples"] == whole["examples"]


def test_eval_marks_an_unreadable_adapter(tiny_engine, targets, tmp_path):
    broken = ModelTarget("broken", Path(tmp_path / "nothing"))
    report = run_eval(tiny_engine, [Example("Say hi.", "", "hi")], [targets["base"], broken], ["rouge_l"],
                      sampling=SamplingParams(max_new_tokens=3))
    assert report["models"][1]["errors"] == 1 and report["models"][0]["errors"] == 0


@pytest.mark.slow
def test_eval_user_oriented_rows_base_vs_adapter(base_model_dir, shared_data, tmp_path):
    from contracts.records import parse_eval_file
    from worker.ml.decoding.engine import InferenceEngine

    parsed = parse_eval_file((shared_data / "user_oriented_instructions.jsonl").read_bytes())
    examples = parsed.records[:4]  # the 20-row job runs in the integration suite
    adapter = helpers.make_random_adapter(base_model_dir, tmp_path / "ft", seed=5, r=8, scale=0.05)
    engine = InferenceEngine(base_model_dir)
    report = run_eval(engine, examples, [ModelTarget("base", None), ModelTarget("ft", adapter)],
                      ["rouge_l", "exact_match", "reference_loss"], sampling=SamplingParams(max_new_tokens=8),
                      batch_size=8)
    assert [m["examples"] for m in report["models"]] == [4, 4]
    for model in report["models"]:
        assert 0 <= model["scores"]["rouge_l"] <= 1 and model["errors"] == 0
        assert 0 < model["scores"]["reference_loss"] < 20
    assert report["models"][0]["scores"] != report["models"][1]["scores"]
    assert all(set(row["outputs"]) == {"base", "ft"} for row in report["examples"])
