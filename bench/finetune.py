"""LoRA fine-tuning benchmark beside ../shared/bench/ref_finetune.py (DESIGN.md section 7).

Same work and learning math as the reference: ``random.Random(seed).shuffle`` of the Alpaca rows,
the first N for training and the next --eval-examples held out; q_proj/v_proj, r=8, alpha=16,
dropout 0.05, lr 3e-4, 5 warmup steps then linear decay, AdamW, grad-norm 1.0, the same number of
optimizer steps. ``seconds`` is the whole ``train_lora`` call (model load, tokenization, training,
checkpoint and verified adapter save), so it is a conservative figure; ``loop_seconds`` is the
training loop alone (first micro-batch to the last optimizer step), which is what the reference's
``trainer.train()`` timing mostly covers.

``eval_loss`` is the token-weighted fp32 loss of the saved adapter, loaded back with plain PEFT, on
the held-out rows with the training masking (all tokens with --train-on-inputs, as the reference).
Prints one JSON line last, with the speed techniques the run used (``techniques``). Each technique
is a ``FinetuneHyperparameters`` field; ``--set FIELD=VALUE`` switches one to measure it on its own
(``--set packing=false``, ``--set fused_head_loss=false``, ``--set head_labelled_only=false``,
``--set attention=eager``, ``--set compile=on``, ``--set cpu_threads=1``). ``--random-shape`` with
``--tokenizer`` / ``--random-dir`` serves bench/gpu_check.sh (beside bench/trainer_reference.py).
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "lorafleet-test" / "models"
REFERENCE_WARMUP_STEPS = 5  # ref_finetune.py: warmup_steps=min(100, 5)


def select_rows(path: Path, n: int, n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    rows = json.loads(path.read_text())
    random.Random(seed).shuffle(rows)
    return rows[:n], rows[n:n + n_eval]


# Real LLaMA shapes for speed at scale (random weights: same FLOPs and memory as the trained model).
RANDOM_SHAPES = {
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
               "num_key_value_heads": 8},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 32},
    # dry runs of bench/gpu_check.sh on a CPU host: the same code path in seconds
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def random_base_model(shape: str, tokenizer_dir: Path, out: Path | None = None) -> Path:
    """A randomly initialised LLaMA of a real shape, with the embedded model's tokenizer, on disk
    (``out`` is re-used when it already holds one, so the Trainer reference loads the same weights)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if out is not None and (out / "config.json").is_file():
        return out
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, **RANDOM_SHAPES[shape])
    out = out or Path(tempfile.mkdtemp(prefix=f"lorafleet-random-{shape}-"))
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def peak_memory_gib() -> float | None:
    """Peak CUDA memory allocated by this process (None on CPU)."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def count_llama_params(model_dir: Path) -> int:
    """Parameters from a LLaMA ``config.json`` (untied embeddings and head counted twice)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    h, L, ff, v = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
    return L * (2 * h * h + 2 * h * kv + 3 * h * ff) + 2 * v * h


def model_flops_utilisation(n_params: int, tokens_per_s: float) -> float | None:
    """MFU with the usual 6 * N FLOPs per token (forward + backward) against the GPU's bf16 peak."""
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    return round(6 * n_params * tokens_per_s / peak, 4) if peak else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--cutoff", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--eval-examples", type=int, default=32)
    ap.add_argument("--train-on-inputs", action="store_true")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    ap.add_argument("--base-model", type=Path, help="HF checkpoint dir (default: the embedded base model)")
    ap.add_argument("--out", type=Path, help="output dir (default: a fresh temp dir)")
    ap.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES),
                    help="speed only: a random LLaMA of this shape instead of the embedded model (no eval)")
    ap.add_argument("--tokenizer", type=Path, help="--random-shape: tokenizer folder (default: the embedded model's)")
    ap.add_argument("--random-dir", type=Path, help="--random-shape: where the random model is kept (re-used)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a FinetuneHyperparameters field (a speed technique: packing=false, "
                         "fused_head_loss=false, compile=on, attention=eager, cpu_threads=1, ...); repeatable")
    return ap.parse_args(argv)


def technique_overrides(pairs: list[str]) -> dict:
    """``--set packing=false`` -> {"packing": "false"}; pydantic parses the value into the field's type."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def reference_hyperparameters(a: argparse.Namespace):
    """The reference run's knobs (see the module docstring); batching and length from the command line."""
    from contracts.configs import FinetuneHyperparameters

    fields = dict(batch_size=a.batch, micro_batch_size=a.micro_batch, num_epochs=a.epochs, cutoff_len=a.cutoff,
                  seed=a.seed, train_on_inputs=a.train_on_inputs, warmup_steps=REFERENCE_WARMUP_STEPS,
                  learning_rate=3e-4, lora_r=8, lora_alpha=16, lora_dropout=0.05,
                  lora_target_modules=["q_proj", "v_proj"], val_set_size=0, precision=a.precision, logging_steps=1,
                  n_checkpoints=1)
    return FinetuneHyperparameters.model_validate({**fields, **technique_overrides(a.set)})


TECHNIQUES = ("packing", "fused_head_loss", "loss_chunk_tokens", "head_labelled_only", "attention", "compile",
              "liger_kernels", "cpu_threads")


def technique_settings(hp) -> dict:
    """The speed techniques this run used (FinetuneHyperparameters fields), for the JSON line."""
    return {name: getattr(hp, name) for name in TECHNIQUES}


def timed_training(base: Path, train_examples: list, hp, out: Path, sources) -> tuple[dict, list[dict], float, float]:
    """Run ``train_lora``; return its result, the per-step metrics, the whole call's and the loop's seconds."""
    from worker.ml.training.finetune import train_lora

    steps: list[dict] = []
    marks: list[float] = []
    start = time.perf_counter()
    res = train_lora(base_model_dir=base, train_examples=train_examples, val_examples=[], hp=hp, out_dir=out,
                     on_step=lambda m: (steps.append(m), marks.append(time.perf_counter())), sources=sources)
    seconds = time.perf_counter() - start
    # the loop's first step starts after setup; estimate it from the first step's own rate
    first_step_seconds = steps[0]["tokens"] / max(steps[0]["tokens_per_s"], 1e-9)
    return res, steps, seconds, marks[-1] - marks[0] + first_step_seconds


def speed_report(a: argparse.Namespace, base: Path, res: dict, n_examples: int, seconds: float,
                 loop_seconds: float) -> dict:
    """--random-shape: throughput and MFU (parameters counted from the model's config)."""
    tokens = res["trained_tokens"]
    return {"impl": "lorafleet", "shape": a.random_shape, "device": res["device"], "precision": res["precision"],
            "examples": n_examples, "steps": res["steps"], "train_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "loop_seconds": round(loop_seconds, 2),
            "loop_tokens_per_s": round(tokens / loop_seconds, 1), "peak_memory_gib": peak_memory_gib(),
            "mfu": model_flops_utilisation(count_llama_params(base), tokens / loop_seconds)}


def held_out_loss(a: argparse.Namespace, base: Path, adapter_dir: Path, eval_examples: list) -> float:
    """fp32 token-weighted loss of the saved adapter, loaded back with plain PEFT, on the held-out rows."""
    import torch

    from worker.ml.training.data import load_tokenizer, tokenize_examples
    from worker.ml.training.lora import load_adapter_model
    from worker.ml.training.loss import evaluate_loss

    tokenizer = load_tokenizer(base)
    held_out = tokenize_examples(eval_examples, tokenizer, cutoff_len=a.cutoff, train_on_inputs=a.train_on_inputs)
    model = load_adapter_model(base, adapter_dir, device="cpu", dtype=torch.float32)
    return evaluate_loss(model, held_out, micro_batch_size=a.micro_batch, pad_id=tokenizer.eos_token_id,
                         device=torch.device("cpu"))["loss"]


def main(argv: list[str] | None = None) -> None:
    from contracts.records import Example
    from contracts.run_config import DataFileRecord, file_sha256
    from worker.ml.base_models import materialise_builtin
    from worker.ml.training.run_setup import RunSources

    a = parse_args(argv)
    if a.random_shape:
        base = random_base_model(a.random_shape, a.tokenizer or materialise_builtin("smollm2-135m-instruct",
                                                                                    DEFAULT_MODELS_DIR), a.random_dir)
    else:
        base = a.base_model or materialise_builtin("smollm2-135m-instruct", DEFAULT_MODELS_DIR)
    train_rows, eval_rows = select_rows(a.data, a.examples, a.eval_examples, a.seed)
    to_example = lambda i, r: Example(r["instruction"], r.get("input") or "", r["output"], line=i + 1)
    train_examples = [to_example(i, r) for i, r in enumerate(train_rows)]
    eval_examples = [to_example(i, r) for i, r in enumerate(eval_rows)]
    sources = RunSources(base_model_name=None if a.base_model or a.random_shape else "smollm2-135m-instruct",
                         data_files=[DataFileRecord(role="training", sha256=file_sha256(a.data),
                                                    size_bytes=a.data.stat().st_size)])
    out = a.out or Path(tempfile.mkdtemp(prefix="lorafleet-bench-ft-"))
    hp = reference_hyperparameters(a)
    res, steps, seconds, loop_seconds = timed_training(base, train_examples, hp, out, sources)
    if a.random_shape:
        print(json.dumps({**speed_report(a, base, res, len(train_examples), seconds, loop_seconds),
                          "techniques": technique_settings(hp)}))
        return
    tokens = res["trained_tokens"]
    eval_loss = held_out_loss(a, base, Path(res["adapter_dir"]), eval_examples)
    print(json.dumps({"impl": "lorafleet", "precision": res["precision"], "examples": len(train_examples),
                      "steps": res["steps"], "train_tokens": tokens, "seconds": round(seconds, 2),
                      "tokens_per_s": round(tokens / seconds, 1), "loop_seconds": round(loop_seconds, 2),
                      "loop_tokens_per_s": round(tokens / loop_seconds, 1), "first_loss": steps[0]["train_loss"],
                      "final_loss": steps[-1]["train_loss"], "eval_loss": round(eval_loss, 4),
                      "techniques": technique_settings(hp)}))


if __name__ == "__main__":
    main()
