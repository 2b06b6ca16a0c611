"""Setting up a LoRA run: the data plan, the model with its optimizer and schedule, and the record of
what the run is (``config.json``). Everything the loop needs is gathered in one ``TrainingRun``.

The order of setup is part of exact reproduction: the seed is set before the LoRA weights are
initialised, and nothing else draws from torch's RNG in between.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from contracts.run_config import (
    BaseModelRecord,
    DataFileRecord,
    RunConfig,
    RuntimeRecord,
    TrainingDataRecord,
    examples_sha256,
    file_sha256,
    library_versions,
)
from worker.ml.training.data import (
    StepPlan,
    TokenizedExample,
    load_tokenizer,
    plan_steps,
    split_train_val,
    tokenize_examples,
)
from worker.ml.training.devices import (
    TrainPrecision,
    choose_precision,
    load_base_for_training,
    resolve_device,
)
from worker.ml.training.lora import build_lora_model
from worker.ml.training.schedules import checkpoint_steps, effective_warmup_steps, lr_factor
from worker.ml.training.speedups import apply_cpu_threads, compile_decoder_layers
from worker.ml.training.train_step import frozen_head_weight


@dataclass
class RunSources:
    """Where the inputs came from, for ``config.json``: the base model's name and the data files read."""

    base_model_name: str | None = None  # None: the base model folder stands for its name
    data_files: list[DataFileRecord] = field(default_factory=list)


@dataclass
class RunData:
    """The tokenized examples and the step plan over them."""

    train: list[TokenizedExample]
    val: list[TokenizedExample]
    pad_id: int
    lengths: list[int]  # token count of each training example (batch planning, packing)
    plan: StepPlan
    save_at: set[int]  # steps that end with a checkpoint
    train_examples_sha256: str

    def fingerprint(self, hp: FinetuneHyperparameters) -> dict:
        """What a checkpoint must match to be resumed by this run (same data and batching)."""
        return {"n_train": len(self.train), "train_tokens": sum(self.lengths), "total_steps": self.plan.total_steps,
                "batch_size": hp.batch_size, "micro_batch_size": hp.micro_batch_size, "seed": hp.seed,
                "lora_r": hp.lora_r}


@dataclass
class TrainingRun:
    """A run's fixed parts (set up once) and its progress (advanced by the loop, restored on resume)."""

    hp: FinetuneHyperparameters
    out_dir: Path
    precision: TrainPrecision
    data: RunData
    model: Any
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any  # torch.amp.GradScaler for fp16 on CUDA, else None
    head_weight: torch.Tensor | None
    config: RunConfig  # written (with artifact and step filled in) as config.json
    started: float
    step: int = 0
    tokens: int = 0
    metrics: dict = field(default_factory=dict)
    resumed_from: int | None = None
    last_saved: int = 0
    epoch_plan: tuple[int, list] = (-1, [])  # (epoch, its micro-batch plan), planned when the epoch starts


def setup_run(*, base_model_dir: Path, train_examples: list[Example], val_examples: list[Example] | None,
              hp: FinetuneHyperparameters, out_dir: Path, device: str, sources: RunSources) -> TrainingRun:
    """Seed, plan the data, build model + optimizer + schedule; progress starts at step 0."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(hp.precision, resolve_device(device))
    apply_cpu_threads(hp, precision.device)
    torch.manual_seed(hp.seed)
    data = setup_data(base_model_dir, train_examples, val_examples, hp)
    model = build_lora_model(load_base_for_training(base_model_dir, hp, precision), hp)
    model.train()
    compile_decoder_layers(model, hp, precision.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = setup_optimizer(params, hp, data.plan.total_steps)
    scaler = torch.amp.GradScaler("cuda") if precision.use_grad_scaler else None
    config = describe_run(hp, base_model_dir, data, precision, sources)
    return TrainingRun(hp=hp, out_dir=out_dir, precision=precision, data=data, model=model, params=params,
                       optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                       head_weight=frozen_head_weight(model, precision), config=config, started=started)


def setup_data(base_model_dir: Path, train_examples: list[Example], val_examples: list[Example] | None,
               hp: FinetuneHyperparameters) -> RunData:
    """Split (when no validation set is given), tokenize, and plan steps and checkpoints."""
    tokenizer = load_tokenizer(base_model_dir)
    if val_examples is None:
        train_examples, val_examples = split_train_val(train_examples, hp.val_set_size, hp.seed)
    train = prepare_examples(train_examples, tokenizer, hp)
    val = prepare_examples(val_examples, tokenizer, hp)
    if not train:
        raise ValueError(f"no training example has a token to learn from within cutoff_len={hp.cutoff_len}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plan = plan_steps(len(train), hp.batch_size, hp.micro_batch_size, hp.num_epochs)
    return RunData(train=train, val=val, pad_id=pad_id, lengths=[len(t.input_ids) for t in train], plan=plan,
                   save_at=set(checkpoint_steps(plan.total_steps, hp.save_steps, hp.n_checkpoints)),
                   train_examples_sha256=examples_sha256(train_examples))


def prepare_examples(examples: list[Example], tokenizer: Any, hp: FinetuneHyperparameters) -> list[TokenizedExample]:
    """Tokenize with the job's template and mask; drop examples with nothing to learn from."""
    tokenized = tokenize_examples(examples, tokenizer, cutoff_len=hp.cutoff_len,
                                  train_on_inputs=hp.train_on_inputs, template=hp.prompt_template)
    return [t for t in tokenized if t.n_loss_tokens > 0]


def setup_optimizer(params: list[torch.nn.Parameter], hp: FinetuneHyperparameters,
                    total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the LoRA weights; warmup then ``hp.lr_scheduler`` decay, stepped once per optimizer step."""
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warmup = effective_warmup_steps(hp.warmup_steps, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(
        lr_factor, warmup_steps=warmup, total_steps=total_steps, scheduler=hp.lr_scheduler))
    return optimizer, scheduler


def describe_run(hp: FinetuneHyperparameters, base_model_dir: Path, data: RunData, precision: TrainPrecision,
                 sources: RunSources) -> RunConfig:
    """The run's ``config.json`` content (artifact and step are filled in at each save)."""
    base_model_dir = Path(base_model_dir)
    base = BaseModelRecord(name=sources.base_model_name or str(base_model_dir), path=str(base_model_dir.resolve()),
                           config_sha256=file_sha256(base_model_dir / "config.json"))
    runtime = RuntimeRecord(device=str(precision.device), precision=precision.name,
                            frozen_weights_dtype=str(precision.frozen_dtype).removeprefix("torch."),
                            grad_scaler=precision.use_grad_scaler)
    return RunConfig(artifact="checkpoint", step=0, total_steps=data.plan.total_steps,
                     prompt_template=hp.prompt_template, hyperparameters=hp, base_model=base,
                     data=TrainingDataRecord(files=list(sources.data_files), n_train=len(data.train),
                                             n_val=len(data.val), train_examples_sha256=data.train_examples_sha256),
                     libraries=library_versions(), runtime=runtime)
