"""The tuned HF Trainer on any device, beside ``bench.finetune --random-shape`` (bench/gpu_check.sh).

``../shared/bench/ref_finetune.py --bf16 --group-by-length`` pins ``use_cpu=True``, so on a GPU the same
Trainer recipe runs from here: the same rows (``random.Random(seed).shuffle``), the same Alpaca template
and encoding (EOS appended, labels = inputs, ``DataCollatorForSeq2Seq`` padding to a multiple of 8),
LoRA q_proj/v_proj r=8 alpha=16 dropout 0.05, lr 3e-4, 5 warmup steps, AdamW, as a careful LLaMA-Factory
or axolotl user runs it on a GPU: base weights loaded in bf16 (adapters fp32), ``bf16=True``,
length-grouped micro-batches, SDPA attention. ``loop_seconds`` is ``trainer.train()`` alone.
Prints one JSON line: tokens/s, peak memory, MFU (6 N FLOPs per token, as bench.finetune).
"""
from __future__ import annotations

import argparse
import inspect
import json
import random
import time
from pathlib import Path

from bench.finetune import (
    RANDOM_SHAPES,
    count_llama_params,
    model_flops_utilisation,
    peak_memory_gib,
    random_base_model,
)

T_IN = ("Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
T_NO = ("Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def grouping() -> dict:
    import transformers

    params = inspect.signature(transformers.TrainingArguments.__init__).parameters
    return {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in params else {
        "group_by_length": True}


def main(argv: list[str] | None = None) -> None:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--random-shape", required=True, choices=sorted(RANDOM_SHAPES))
    ap.add_argument("--tokenizer", required=True, type=Path)
    ap.add_argument("--random-dir", type=Path)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cutoff", type=int, default=512)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="/tmp/lorafleet-trainer-ref")
    a = ap.parse_args(argv)
    path = random_base_model(a.random_shape, a.tokenizer, a.random_dir)
    rows = json.loads(a.data.read_text())
    random.Random(a.seed).shuffle(rows)
    rows = rows[:a.examples]
    tok = transformers.AutoTokenizer.from_pretrained(path)
    tok.pad_token_id = 0
    cuda = torch.cuda.is_available()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation="sdpa",
        device_map={"": 0} if cuda else None)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias="none",
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))

    def encode(ex: dict) -> dict:
        text = (T_IN if ex.get("input") else T_NO).format(**ex) + ex["output"]
        r = tok(text, truncation=True, max_length=a.cutoff, padding=False)
        if r["input_ids"][-1] != tok.eos_token_id and len(r["input_ids"]) < a.cutoff:
            r["input_ids"].append(tok.eos_token_id)
            r["attention_mask"].append(1)
        r["labels"] = r["input_ids"].copy()
        return r

    data = [encode(ex) for ex in rows]
    tokens = sum(len(d["input_ids"]) for d in data)
    args = transformers.TrainingArguments(
        output_dir=a.out, per_device_train_batch_size=a.micro_batch,
        gradient_accumulation_steps=a.batch // a.micro_batch, warmup_steps=5, num_train_epochs=1,
        learning_rate=3e-4, logging_steps=1, optim="adamw_torch", save_strategy="no", report_to=[],
        use_cpu=not cuda, seed=a.seed, disable_tqdm=True, bf16=cuda, **grouping())
    trainer = transformers.Trainer(model=model, train_dataset=data, args=args, data_collator=(
        transformers.DataCollatorForSeq2Seq(tok, pad_to_multiple_of=8, return_tensors="pt", padding=True)))
    model.config.use_cache = False
    start = time.perf_counter()
    res = trainer.train()
    loop = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(json.dumps({"impl": "hf-trainer-bf16-grouped" if cuda else "hf-trainer-fp32-grouped",
                      "shape": a.random_shape, "device": "cuda" if cuda else "cpu", "examples": len(rows),
                      "steps": res.global_step, "train_tokens": tokens, "loop_seconds": round(loop, 2),
                      "loop_tokens_per_s": round(tokens / loop, 1), "peak_memory_gib": peak_memory_gib(),
                      "mfu": model_flops_utilisation(count_llama_params(path), tokens / loop),
                      "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None}))


if __name__ == "__main__":
    main()
