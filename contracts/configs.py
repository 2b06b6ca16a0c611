"""Typed, torch-free configs for every job kind.

The same classes validate API requests and drive the workers, and the resolved config is written
beside what a job produces as ``config.json``: ``FinetuneHyperparameters`` inside every adapter and
checkpoint folder (``contracts.run_config.RunConfig``), ``GenerationJobConfig`` in a generation
job's work folder. ``extra="forbid"`` everywhere: an unknown key is an error naming the key.
Importable by the API process (pydantic only).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

PromptTemplateName = Literal["alpaca", "alpaca_legacy", "alpaca_short", "chat"]


class FinetuneHyperparameters(BaseModel):
    """Alpaca-LoRA's knobs with its defaults; OpenAI's names accepted as aliases."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # --- batching (global batch = micro_batch_size * gradient accumulation steps)
    batch_size: int = Field(128, ge=1, le=65536, description="examples per optimizer step")
    micro_batch_size: int = Field(4, ge=1, le=1024, description="examples per forward pass; memory cost")
    num_epochs: float = Field(3, gt=0, le=100, description="passes over the training set")
    # --- optimiser
    learning_rate: float = Field(3e-4, gt=0, le=1.0, description="peak LR of AdamW")
    warmup_steps: int = Field(100, ge=0, description="linear warmup; capped at 10% of the run when larger")
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(0.0, ge=0, le=1.0)
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    # --- data
    cutoff_len: int = Field(256, ge=8, le=131072, description="max tokens per example; longer ones are truncated")
    val_set_size: float = Field(0, ge=0, description="examples held out for validation (<1: a fraction)")
    train_on_inputs: bool = Field(False, description="False: loss on the response and EOS only")
    prompt_template: PromptTemplateName = "alpaca"
    group_by_length: bool = Field(True, description="length-bucketed micro-batches: no wasted padding")
    packing: bool = Field(True, description="pack each step's examples into rows of cutoff_len tokens "
                                            "(micro_batch_size rows per pass) with block-diagonal attention; "
                                            "same examples per step, same gradient, fewer and fuller passes")
    # --- LoRA (PEFT vocabulary)
    lora_r: int = Field(8, ge=1, le=1024, description="rank; higher costs memory, may learn more")
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    # --- bookkeeping
    logging_steps: int = Field(1, ge=1)
    eval_steps: int = Field(0, ge=0, description="0: validate at the end (and at checkpoints) only")
    save_steps: int = Field(0, ge=0, description="0: use n_checkpoints spread over the run")
    n_checkpoints: int = Field(1, ge=1, le=1000)
    seed: int = 42
    # --- hardware (ignored on CPU)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    # --- speed techniques: each keeps the learning math (fp32 losses equal with it on or off)
    fused_head_loss: bool = Field(True, description="frozen output head + cross-entropy fused: the gradient is "
                                                    "taken chunk by chunk in the forward pass, logits never kept")
    loss_chunk_tokens: int = Field(1024, ge=16, le=65536, description="positions per head/loss chunk")
    head_labelled_only: bool = Field(True, description="output head only where a target exists (no logits "
                                                       "for masked prompt tokens or pads)")
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="auto: flash_attention_2 on CUDA when flash_attn imports (varlen for packed rows), "
                            "else sdpa (block-diagonal mask for packed rows)")
    compile: Literal["auto", "on", "off"] = Field("auto", description="torch.compile of each decoder layer; "
                                                                      "auto: on CUDA, off on CPU")
    liger_kernels: Literal["auto", "on", "off"] = Field(
        "auto", description="Liger's fused RMSNorm / RoPE / SwiGLU on CUDA; auto: when liger_kernel imports")
    cpu_threads: int = Field(0, ge=0, le=1024, description="torch intra-op threads on CPU; 0: one per core")
    # --- warm start from an existing adapter (its LoRA shape must match)
    init_adapter: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _openai_names(cls, data):
        """Map OpenAI's ``n_epochs``/``batch_size``/``learning_rate_multiplier`` ("auto" allowed)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("n_epochs", "batch_size", "learning_rate_multiplier"):
            if data.get(key) == "auto":
                data.pop(key)
        if "n_epochs" in data:
            data.setdefault("num_epochs", data.pop("n_epochs"))
        if "learning_rate_multiplier" in data:
            mult = data.pop("learning_rate_multiplier")
            if not isinstance(mult, (int, float)) or isinstance(mult, bool) or mult <= 0:
                raise ValueError("learning_rate_multiplier must be a positive number or 'auto'")
            data["learning_rate"] = float(data.get("learning_rate", 3e-4)) * mult
        return data

    @model_validator(mode="after")
    def _consistent(self):
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are exclusive")
        if isinstance(self.lora_target_modules, list) and not self.lora_target_modules:
            raise ValueError("lora_target_modules must not be empty")
        return self

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.batch_size // self.micro_batch_size



class DpoHyperparameters(FinetuneHyperparameters):
    """DPO over the same LoRA recipe: every supervised knob (``batch_size`` and ``micro_batch_size`` count
    preference pairs) plus ``beta``, the strength of the pull towards the reference policy."""

    beta: float = Field(0.1, gt=0, le=100, description="DPO temperature: higher keeps closer to the reference")


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: FinetuneHyperparameters = Field(default_factory=FinetuneHyperparameters)


class DpoMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


MethodType = Literal["supervised", "dpo", "reinforcement"]
SUPPORTED_METHODS = ("supervised", "dpo")


class FineTuningMethod(BaseModel):
    """OpenAI's ``method``: its ``type`` and that type's block. ``reinforcement`` parses (so the API can
    answer it with a precise 400) but no worker runs it."""

    model_config = ConfigDict(extra="forbid")
    type: MethodType = "supervised"
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: dict | None = None

    @model_validator(mode="after")
    def _block_matches_type(self):
        for other in ("supervised", "dpo", "reinforcement"):
            if other != self.type and getattr(self, other) is not None:
                raise ValueError(f"method.{other} given with method.type '{self.type}'")
        return self

    def hyperparameters(self) -> FinetuneHyperparameters:
        """The hyperparameters of the method's block (its defaults when the block is left out)."""
        if self.type == "dpo":
            return (self.dpo or DpoMethod()).hyperparameters
        return (self.supervised or SupervisedMethod()).hyperparameters


# --- self-instruct generation
GenerationMethod = Literal["self_instruct", "alpaca"]


class TeacherConfig(BaseModel):
    """The model that writes the data: an OpenAI-compatible endpoint (``base_url``, ``model``, ``api_key``),
    or with ``local`` a lorafleet model (base, adapter or checkpoint) run in-process by the worker.
    ``api_key`` is a secret: masked in reprs, left out of dumps."""

    model_config = ConfigDict(extra="forbid")

    local: bool = Field(False, description="run `model` (a lorafleet base model, adapter or checkpoint of yours) "
                                           "in-process on a GPU worker instead of calling an endpoint")
    base_url: str | None = Field(None, description="e.g. http://host/v1; None: the SDK's default (api.openai.com)")
    model: str = Field(..., min_length=1, max_length=200)
    api: Literal["chat", "completions"] = Field("chat", description="chat: prompt sent as one user message")
    api_key: SecretStr | None = Field(None, exclude=True, description="never stored in dumps or logs")
    max_concurrency: int = Field(4, ge=1, le=256, description="requests in flight at once")
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(6, ge=0, le=50, description="retries on 429/5xx/timeouts only")
    input_usd_per_1m: float | None = Field(None, ge=0, description="None: built-in price table (0 if unknown)")
    output_usd_per_1m: float | None = Field(None, ge=0)
    # instruction-writing step decoding; None: the method's published value
    # (self_instruct: temperature 0.7, top_p 0.5, max_tokens 1024; alpaca: 1.0, 1.0, 3072).
    # max_tokens also caps self_instruct's instance step (published: 300/350) when lower.
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=32768)

    @model_validator(mode="after")
    def _prices_together(self):
        if (self.input_usd_per_1m is None) != (self.output_usd_per_1m is None):
            raise ValueError("give both input_usd_per_1m and output_usd_per_1m, or neither")
        if self.local and (self.base_url is not None or self.api_key is not None):
            raise ValueError("a local teacher takes no base_url or api_key: it runs in the worker")
        return self


class GenerationFilters(BaseModel):
    """Instruction filters of the published pipelines (defaults = published behaviour)."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(4, ge=0, description="drop instructions with fewer words (published: <= 3 dropped)")
    max_words: int = Field(150, ge=1, description="drop instructions with more words")
    count_words_by: Literal["whitespace", "tokens"] = Field(
        "whitespace", description="tokens: the dedup tokenizer's tokens (one per CJK character)")
    blacklist: bool = Field(True, description="the method's keyword list (13 words; alpaca 18)")
    extra_blacklist: list[str] = Field(default_factory=list, max_length=200)
    drop_write_a_program: bool = True
    drop_punctuation_start: bool = True
    drop_non_ascii_start: bool = Field(True, description="published; turn off for Chinese or other scripts")
    rouge: bool = Field(True, description="ROUGE-L near-duplicate filter against the seeds and kept items")
    instance_filters: bool = Field(True, description="self_instruct step 4: invalid and conflicting instances")


class GenerationJobConfig(BaseModel):
    """A self-instruct data generation job (Self-Instruct 4-step or Alpaca one-call)."""

    model_config = ConfigDict(extra="forbid")

    method: GenerationMethod = "self_instruct"
    num_instructions: int = Field(100, ge=1, le=1_000_000, description="stop once this many are kept")
    max_instances_per_task: int = Field(5, ge=1, le=50, description="self_instruct: instances per instruction")
    request_batch_size: int = Field(5, ge=1, le=256, description="prompts per round")
    num_prompt_instructions: int | None = Field(None, ge=1, le=64,
                                                description="in-context examples; None: 8 (self_instruct), 3 (alpaca)")
    num_machine_instructions: int = Field(2, ge=0, le=64, description="self_instruct: in-context machine ones")
    use_clf_seed_tasks_only: bool = Field(False, description="self_instruct: classification seeds and header")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="ROUGE-L F1 above this drops a candidate")
    dedup_tokenizer: Literal["auto", "rouge_score", "cjk"] = Field(
        "auto", description="auto: cjk when a seed instruction has CJK text, else rouge_score (published)")
    budget_usd: float | None = Field(None, ge=0, description="pause (not fail) before spending more")
    max_rounds: int | None = Field(None, ge=1, description="None: 10 + 3 * num_instructions / request_batch_size")
    seed: int = 42
    teacher: TeacherConfig
    filters: GenerationFilters = Field(default_factory=GenerationFilters)

    @property
    def prompt_instructions(self) -> int:
        if self.num_prompt_instructions is not None:
            return self.num_prompt_instructions
        return 8 if self.method == "self_instruct" else 3

    @property
    def round_limit(self) -> int:
        if self.max_rounds is not None:
            return self.max_rounds
        return 10 + 3 * -(-self.num_instructions // self.request_batch_size)

    @model_validator(mode="after")
    def _consistent(self):
        if self.method == "self_instruct" and self.num_machine_instructions >= self.prompt_instructions:
            raise ValueError("num_machine_instructions must be below num_prompt_instructions")
        if self.filters.min_words > self.filters.max_words:
            raise ValueError("filters.min_words must not exceed filters.max_words")
        return self


# --- inference / batch / eval
EvalMetric = Literal["rouge_l", "exact_match", "reference_loss", "judge", "acc", "acc_norm"]  # acc*: choices rows


class SamplingParams(BaseModel):
    """Decoding knobs of one generation request (engine defaults: greedy, 128 new tokens).

    ``temperature > 0`` really samples (with ``top_p`` / ``top_k`` applied); ``temperature == 0`` is
    greedy whatever top_p / top_k say (Alpaca-LoRA's generate.py silently ignored these knobs).
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(128, ge=1, le=32768, description="tokens to generate at most")
    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    top_k: int | None = Field(None, ge=1, le=100000, description="sample among the k most likely tokens")
    num_beams: int = Field(1, ge=1, le=16, description=">1: deterministic beam search (no sampling)")
    seed: int | None = Field(None, description="makes sampling reproducible per request")
    stop: list[str] = Field(default_factory=list, max_length=16, description="stop sequences (not in the text)")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    @model_validator(mode="after")
    def _beams_are_greedy(self):
        if self.num_beams > 1 and self.do_sample:
            raise ValueError("num_beams > 1 is beam search; set temperature to 0 (sampling with beams is not supported)")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")
        return self
