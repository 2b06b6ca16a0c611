"""How much accelerator memory a job needs: the dispatcher's placement estimate and the preflight's.

One function, ``estimate_job_memory(kind, params, shape)``, used by the dispatcher (through
``models.crud.resources.job_resources``) to place a job on a worker that fits it, and by the
preflight report, so both show the same number. Each term is a small function whose constants are
named below with why they have the value they have; the numbers follow what the worker really does
(``worker.ml.training.devices``, ``worker.ml.training.loss``, ``worker.ml.decoding.engine``).
It is an estimate for placement, meant to err high by a little, not an allocator trace.
Torch-free (stdlib + pydantic): the API and the dispatcher import it.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.configs import DpoHyperparameters, FinetuneHyperparameters, SamplingParams
from contracts.model_shape import ModelShape

__all__ = ["GIB", "MemoryEstimate", "ModelShape", "estimate_job_memory", "finetune_memory", "inference_memory"]

DeviceType = Literal["cuda", "cpu"]
GIB = 1 << 30

# --- fixed costs
OVERHEAD_BYTES = GIB  # CUDA context (~300-500 MB) + caching-allocator slack/fragmentation + cuBLAS workspaces
# No shape known (a registered model whose config could not be read): a fixed, deliberately large
# estimate per kind, so such a job lands only on a big worker rather than crashing a small one.
FALLBACK_BYTES = {"fine_tuning": 24 * GIB, "batch": 20 * GIB, "eval": 20 * GIB, "generation": 20 * GIB,
                  "export": 32 * GIB}

# --- frozen weights, bytes per parameter
HALF_BYTES, FP32_BYTES = 2, 4
INT8_BYTES = 1.0  # LLM.int8: one byte per weight (its per-row fp32 scales are < 0.1%)
NF4_BYTES = (4 + 0.127) / 8  # QLoRA NF4: 4 bits + double-quantised absmax constants (0.127 bit/param)

# --- LoRA: fp32 weight + fp32 grad + AdamW's two fp32 moments, per trainable parameter
LORA_BYTES_PER_PARAM = 16

# --- training activations autograd keeps per token and per decoder layer (16-bit activations;
# doubled for fp32 runs). The frozen linears keep nothing (their input grad needs only the weight).
# Checked with torch.autograd.graph.saved_tensors_hooks on SmolLM2 (bf16, LoRA q/v, 256 tokens):
# this count is 0-8% above the bytes really saved, for q/v with dropout and for all-linear without.
ATTN_NORM_BYTES_PER_HIDDEN = 16  # 2 RMSNorms keep their fp32 input (2 x 4 B) + SDPA keeps q, k, v, out (4 x 2 B)
MLP_BYTES_PER_INTERMEDIATE = 6  # SiLU keeps gate (2 B); gate*up keeps silu(gate) and up (2 x 2 B)
LORA_INPUT_BYTES = 2  # each targeted module keeps its input for lora_A's grad ...
LORA_DROPOUT_BYTES = 4  # ... with lora_dropout > 0, also the dropped copy and its mask (measured 3.9 B)
CHECKPOINTED_BYTES_PER_HIDDEN = 2  # gradient checkpointing: each layer's input only (recomputed in backward)

# --- the loss (worker.ml.training.loss): head + cross-entropy in chunks of LOSS_CHUNK_TOKENS positions
LOSS_CHUNK_TOKENS = 1024  # worker.ml.training.loss.LOSS_CHUNK_TOKENS (a test keeps the two equal)
FUSED_LOSS_BYTES_PER_LOGIT = 12  # per chunk, transient: bf16 logits 2 + fp32 logits 4 + softmax 4 + bf16 copy 2
KEPT_LOSS_BYTES_PER_LOGIT = 4  # trainable head: every chunk's fp32 log-softmax is kept for backward

# --- inference (worker.ml.decoding.engine.InferenceEngine defaults)
ENGINE_MAX_BATCH_TOKENS = 16384  # a bucket's rows x (prompt + new tokens) stay under this (one long row aside)
ASSUMED_PROMPT_TOKENS = 512  # prompts are unknown before the job runs; Alpaca-style prompts are 100-300
BATCH_DEFAULT_MAX_TOKENS = 256  # worker.ml.evaluation.batch_run: a batch line without max_tokens
INFERENCE_LAYER_ELEMENTS_PER = (4, 3)  # one layer's live forward tensors: ~4 x hidden + 3 x intermediate per token
GENERATION_MAX_TOKENS = {"self_instruct": 1024, "alpaca": 3072}  # contracts.configs.TeacherConfig published values

PER_LAYER_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class MemoryEstimate(BaseModel):
    """Bytes one device needs (``bytes`` = the sum of ``breakdown``), on each of ``devices`` devices."""

    model_config = ConfigDict(frozen=True)
    bytes: int
    devices: int = 1
    breakdown: dict[str, int] = Field(default_factory=dict)
    note: str | None = None

    @classmethod
    def of(cls, breakdown: dict[str, float], devices: int, note: str | None = None) -> MemoryEstimate:
        parts = {k: round(v) for k, v in breakdown.items()}
        return cls(bytes=sum(parts.values()), devices=devices, breakdown=parts, note=note)


def estimate_job_memory(kind: str, params: dict, shape: ModelShape | None, *,
                        device_type: DeviceType = "cuda") -> MemoryEstimate:
    """Per-device memory of a job of ``kind`` with its stored ``params`` on a model of ``shape``.

    Jobs that hold no model on a device (preflight: a tokenizer only; generation against a remote
    teacher: HTTP only) need 0. ``shape`` None: ``FALLBACK_BYTES``, said so in the breakdown.
    """
    devices = requested_devices(params)
    teacher = ((params.get("config") or {}).get("teacher") or {})
    if kind == "preflight" or (kind == "generation" and not teacher.get("local")):
        return MemoryEstimate.of({}, devices, note=f"a {kind} job holds no model on a device")
    if shape is None:
        fallback = FALLBACK_BYTES.get(kind, max(FALLBACK_BYTES.values()))
        return MemoryEstimate.of({"fallback": fallback}, devices,
                                 note="base model shape unknown: a fixed conservative estimate for the kind")
    if kind == "fine_tuning":
        if params.get("method") == "dpo":  # a pair is two sequences in one forward pass
            hp = DpoHyperparameters.model_validate(params.get("hyperparameters") or {})
            hp = hp.model_copy(update={"micro_batch_size": 2 * hp.micro_batch_size})
        else:
            hp = FinetuneHyperparameters.model_validate(params.get("hyperparameters") or {})
        return finetune_memory(hp, shape, device_type=device_type, devices=devices)
    if kind == "export":  # merge_adapter loads the base in fp32 and folds the adapter in
        return MemoryEstimate.of({"weights": shape.n_params * FP32_BYTES, "overhead": OVERHEAD_BYTES}, devices)
    rows, max_new, precision = inference_workload(kind, params)
    return inference_memory(shape, rows=rows, max_new_tokens=max_new, precision=precision,
                            device_type=device_type, devices=devices)


def requested_devices(params: dict) -> int:
    """``params["resources"]["devices"]`` (a gang of N devices on one worker); 1 when absent or unreadable."""
    try:
        return max(1, int((params.get("resources") or {}).get("devices", 1)))
    except (TypeError, ValueError):
        return 1


def inference_workload(kind: str, params: dict) -> tuple[int, int, str]:
    """(rows decoded together, new tokens per row, precision) of a batch, eval or local-teacher job."""
    if kind == "generation":
        config = params.get("config") or {}
        teacher = config.get("teacher") or {}
        max_new = teacher.get("max_tokens") or GENERATION_MAX_TOKENS.get(config.get("method", "self_instruct"), 3072)
        return int(teacher.get("max_concurrency", 4)), int(max_new), "auto"
    if kind == "eval":
        max_new = SamplingParams.model_validate(params.get("sampling") or {}).max_new_tokens
    else:
        max_new = BATCH_DEFAULT_MAX_TOKENS
    return int(params.get("batch_size", 16)), int(max_new), str(params.get("precision", "auto"))


# --- fine-tuning
def finetune_memory(hp: FinetuneHyperparameters, shape: ModelShape, *, device_type: DeviceType = "cuda",
                    devices: int = 1) -> MemoryEstimate:
    """A LoRA fine-tuning run: frozen weights + LoRA state + kept activations + the loss + overhead.
    With several devices (data parallel) each holds the whole model and its own micro-batch."""
    tokens = hp.micro_batch_size * hp.cutoff_len  # padded or packed rows never exceed cutoff_len
    targets = target_module_names(hp.lora_target_modules)
    half = (device_type == "cuda" and hp.precision != "fp32") or hp.precision == "bf16"
    return MemoryEstimate.of({
        "weights": training_weight_bytes(shape, hp, device_type),
        "lora_weights_grads_optimizer": lora_params(shape, hp.lora_r, targets) * LORA_BYTES_PER_PARAM,
        "activations": training_activation_bytes(shape, tokens, targets, hp.lora_dropout > 0,
                                                 checkpointed=hp.gradient_checkpointing and device_type == "cuda",
                                                 half=half),
        "logits": loss_bytes(shape, tokens, trainable_head="lm_head" in targets),
        "kv_cache": 0,
        "overhead": OVERHEAD_BYTES,
    }, devices)


def training_weight_bytes(shape: ModelShape, hp: FinetuneHyperparameters, device_type: DeviceType) -> float:
    """Frozen base weights as ``worker.ml.training.devices`` loads them. CUDA: bf16/fp16 (fp32 if asked);
    8-bit / 4-bit quantise the decoder's linears, and ``prepare_model_for_kbit_training`` turns the rest
    (embeddings, head, norms) to fp32. CPU: fp32, the decoder's linears in bf16 only when asked for bf16
    (``auto`` may pick bf16 on a CPU that has it; fp32 is the safe bound)."""
    linear, other = shape.linear_params, shape.n_params - shape.linear_params
    if device_type == "cpu":
        return linear * (HALF_BYTES if hp.precision == "bf16" else FP32_BYTES) + other * FP32_BYTES
    if hp.load_in_4bit:
        return linear * NF4_BYTES + other * FP32_BYTES
    if hp.load_in_8bit:
        return linear * INT8_BYTES + other * FP32_BYTES
    return shape.n_params * (FP32_BYTES if hp.precision == "fp32" else HALF_BYTES)


def target_module_names(targets: list[str] | str) -> list[str]:
    """Leaf names of the targeted modules; ``all-linear`` is PEFT's every linear layer but the head."""
    if targets == "all-linear":
        return list(PER_LAYER_MODULES)
    return sorted({t.rsplit(".", 1)[-1] for t in targets})


def lora_params(shape: ModelShape, rank: int, targets: list[str]) -> int:
    """rank x (in + out) for each targeted module (A is in x r, B is r x out), in every layer."""
    total = 0
    for name in targets:
        fan_in, fan_out = shape.module_dims(name)
        total += rank * (fan_in + fan_out) * (1 if name == "lm_head" else shape.n_layers)
    return total


def training_activation_bytes(shape: ModelShape, tokens: int, targets: list[str], dropout: bool, *,
                              checkpointed: bool, half: bool) -> float:
    """What autograd keeps for the backward pass over ``tokens`` positions (see the constants above).
    Gradient checkpointing keeps each layer's input and recomputes one layer at a time."""
    lora_per_token = sum(shape.module_dims(n)[0] for n in targets if n != "lm_head") * (
        LORA_INPUT_BYTES + (LORA_DROPOUT_BYTES if dropout else 0))
    per_layer = (ATTN_NORM_BYTES_PER_HIDDEN * shape.hidden_size
                 + MLP_BYTES_PER_INTERMEDIATE * shape.intermediate_size + lora_per_token)
    scale = 1 if half else FP32_BYTES / HALF_BYTES
    if checkpointed:
        return tokens * scale * (CHECKPOINTED_BYTES_PER_HIDDEN * shape.hidden_size * shape.n_layers + per_layer)
    return tokens * scale * per_layer * shape.n_layers


def loss_bytes(shape: ModelShape, tokens: int, *, trainable_head: bool) -> float:
    """The output head and cross-entropy. A frozen head is fused with the loss chunk by chunk, so only
    one chunk's logits live at a time; a trainable head keeps every chunk's log-softmax for backward."""
    chunk = min(tokens, LOSS_CHUNK_TOKENS)
    transient = chunk * shape.vocab_size * FUSED_LOSS_BYTES_PER_LOGIT
    kept = tokens * shape.vocab_size * KEPT_LOSS_BYTES_PER_LOGIT if trainable_head else 0
    grad_hidden = tokens * shape.hidden_size * HALF_BYTES  # the fused loss's saved d(loss)/d(hidden)
    return transient + kept + grad_hidden


# --- inference (batch, eval, a local teacher)
def inference_memory(shape: ModelShape, *, rows: int, max_new_tokens: int, precision: str = "auto",
                     device_type: DeviceType = "cuda", devices: int = 1) -> MemoryEstimate:
    """Weights in the engine's dtype + the KV cache of one bucket + one layer's forward + the last
    position's logits + overhead. LoRA adapters in the engine's cache are small and left in overhead."""
    dtype_bytes = inference_dtype_bytes(precision, device_type)
    span = ASSUMED_PROMPT_TOKENS + max_new_tokens
    tokens = min(rows * span, max(ENGINE_MAX_BATCH_TOKENS, span))
    per_hidden, per_intermediate = INFERENCE_LAYER_ELEMENTS_PER
    return MemoryEstimate.of({
        "weights": shape.n_params * dtype_bytes,
        "lora_weights_grads_optimizer": 0,
        "activations": tokens * (per_hidden * shape.hidden_size + per_intermediate * shape.intermediate_size)
        * dtype_bytes,
        "logits": rows * shape.vocab_size * FP32_BYTES * 2,  # logits_to_keep=1: fp32 logits + probabilities
        "kv_cache": kv_cache_bytes(shape, tokens, dtype_bytes),
        "overhead": OVERHEAD_BYTES,
    }, devices)


def inference_dtype_bytes(precision: str, device_type: DeviceType) -> int:
    """``worker.ml.decoding.loaded_model.resolve_dtype``: auto is bf16 on CUDA, fp32 on a CPU (safe bound)."""
    if precision in ("fp32", "float32") or (precision == "auto" and device_type == "cpu"):
        return FP32_BYTES
    return HALF_BYTES


def kv_cache_bytes(shape: ModelShape, tokens: int, dtype_bytes: int) -> int:
    """Keys and values of every layer for ``tokens`` positions (grouped-query heads share them)."""
    return 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim_or_default * dtype_bytes * tokens


def describe(estimate: MemoryEstimate) -> dict[str, Any]:
    """JSON-safe view for reports: bytes, GiB rounded, devices, breakdown, note."""
    out: dict[str, Any] = {**estimate.model_dump(), "gib": round(estimate.bytes / GIB, 2)}
    if out["note"] is None:
        out.pop("note")
    return out
