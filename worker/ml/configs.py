"""Typed, torch-free configs for every job kind.

The same classes validate API requests, drive the workers and are written next to every artifact
as ``config.json``. ``extra="forbid"`` everywhere: an unknown key is an error naming the key.
Importable by the API process (pydantic only).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    packing: bool = Field(False, description="pack several examples per row with block-diagonal attention")
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
