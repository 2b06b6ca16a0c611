"""EleutherAI's lm-evaluation-harness (``local-completions``) against a live serving app: a tiny
multiple-choice task whose data this test writes (local JSON, no hub) gets the ``acc`` that the
engine's own scores give, choice by choice; a ``generate_until`` task runs with token-id prompts."""
from __future__ import annotations

import json

import pytest

from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.decoding.scoring import ScoreItem, score_continuations
from worker.ml.evaluation.multiple_choice import split_pair

pytest.importorskip("lm_eval")

tiny_engine = helpers.tiny_engine  # shared fixture

DOCS = [
    {"question": "What is 2 + 2?", "choices": ["3", "4", "22"], "label": 1},
    {"question": "Which one is an animal?", "choices": ["a rock", "a cat", "a cloud"], "label": 1},
    {"question": "The sky on a clear day is", "choices": ["blue", "green", "plaid"], "label": 0},
    {"question": "Which is a prime number?", "choices": ["9", "7", "15"], "label": 1},
    {"question": "Water freezes at", "choices": ["0 degrees Celsius", "100 degrees Celsius"], "label": 0},
    {"question": "The opposite of hot is", "choices": ["cold", "warm", "spicy"], "label": 0},
]
TASK = """task: lorafleet_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


GENERATE_TASK = """task: lorafleet_tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices[label]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def run_task(name: str, task_yaml: str, server, tiny_llama_dir, tmp_path, monkeypatch) -> dict:
    """``name`` from ``task_yaml`` (over DOCS written as local JSON) with ``local-completions``, offline."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / f"{name}.yaml").write_text(task_yaml.format(data=data))
    return simple_evaluate(
        model="local-completions",
        model_args={"base_url": f"{server[0]}/completions", "model": "ft-a", "tokenizer_backend": "huggingface",
                    "tokenizer": str(tiny_llama_dir), "tokenized_requests": True, "batch_size": 8,
                    "max_retries": 1},
        tasks=[name], task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        log_samples=True, bootstrap_iters=0)


def test_local_completions_multiple_choice_acc_equals_the_engines_scores(server, tiny_llama_dir, tiny_engine,
                                                                        serving_targets, tmp_path, monkeypatch):
    out = run_task("lorafleet_tiny_mc", TASK, server, tiny_llama_dir, tmp_path, monkeypatch)

    # the engine's own scores: each choice (" " + choice, lm-eval's target delimiter) after the question
    adapter = tiny_engine.loaded.adapter_name(serving_targets["ft-a"].adapter_dir)
    expected_sums, correct = [], []
    for doc in DOCS:
        context = f"Question: {doc['question']}\nAnswer:"
        items = [ScoreItem(*split_pair(tiny_engine.tokenizer, context, " " + c, add_special_tokens=False), adapter)
                 for c in doc["choices"]]
        sums = [r.logprob for r in score_continuations(tiny_engine.loaded, items)]
        expected_sums.append(sums)
        correct.append(float(max(range(len(sums)), key=sums.__getitem__) == doc["label"]))
    acc = out["results"]["lorafleet_tiny_mc"]["acc,none"]
    assert acc == pytest.approx(sum(correct) / len(correct))
    samples = sorted(out["samples"]["lorafleet_tiny_mc"], key=lambda s: s["doc_id"])
    for sample, sums in zip(samples, expected_sums):
        assert [resp[0][0] for resp in sample["resps"]] == pytest.approx(sums, abs=1e-4)
    assert [s["acc"] for s in samples] == correct


def test_local_completions_generate_until_sends_token_id_prompts(server, tiny_llama_dir, tiny_engine, tmp_path,
                                                                 monkeypatch):
    import worker.serving.app as serving_app

    bodies = []
    parse = serving_app.parse_openai_body

    def recording(url, body, *args, **kwargs):
        bodies.append(body)
        return parse(url, body, *args, **kwargs)

    monkeypatch.setattr(serving_app, "parse_openai_body", recording)
    out = run_task("lorafleet_tiny_gen", GENERATE_TASK, server, tiny_llama_dir, tmp_path, monkeypatch)
    samples = sorted(out["samples"]["lorafleet_tiny_gen"], key=lambda s: s["doc_id"])
    assert len(samples) == len(DOCS) and all(isinstance(s["resps"][0][0], str) for s in samples)
    assert "exact_match,none" in out["results"]["lorafleet_tiny_gen"]
    prompts = [p for body in bodies for p in body["prompt"]]  # lm-eval batches them: a list of id lists
    assert all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompts), prompts
    sent = sorted(tiny_engine.tokenizer.decode(p) for p in prompts)
    assert sent == sorted(f"Question: {d['question']}\nAnswer:" for d in DOCS)
    assert all(body["max_tokens"] == 8 and "\n" in body["stop"] for body in bodies)
