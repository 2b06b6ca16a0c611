"""The job-submitting commands: ``generate`` (self-instruct), ``finetune``, ``batch`` and ``eval``.

Each takes its common fields as options, anything else of the API's create body through ``--set key=value``
(dotted keys nest) or ``--body file.json``, and with ``--follow`` follows the job to its end. A file option
takes a file id or a local path (uploaded first)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorafleet_cli.client.body import apply_sets, file_id, read_body
from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.follow import follow_job

BASE = "smollm2-135m-instruct"
Sets = Annotated[list[str] | None, typer.Option("--set", help="any other create-body field: key=value (dotted keys "
                                                "nest; JSON values)", show_default=False)]
Body = Annotated[Path | None, typer.Option("--body", help="a JSON file with the create body (options override it)",
                                           show_default=False)]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="follow the job until it ends (exit 1 if it fails)")]
Priority = Annotated[int | None, typer.Option(help="order among your own waiting jobs (-100..100)",
                                              show_default=False)]


def given(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not None}


def submit(cli: Cli, path: str, body: dict, follow: bool) -> dict:
    """Create the job; follow it to its end (its kind's full view printed) or print how to."""
    job = cli.api.post(path, body)
    if follow:
        if not cli.out.as_json:
            cli.out.say(f"submitted {job['id']} ({job['status']})")
        return follow_job(cli, job["id"])
    cli.out.say(f"submitted {job['id']} ({job['status']}); follow it with: lorafleet jobs follow {job['id']}", job)
    return job


def finetune(cli: Cli, training_file: Annotated[str, typer.Argument(help="a file id, a dataset id (ds-...) or "
                                                                    "a local JSONL/JSON file")],
             model: Annotated[str, typer.Option(help="base model")] = BASE,
             validation_file: Annotated[str | None, typer.Option(show_default=False)] = None,
             suffix: Annotated[str | None, typer.Option(show_default=False)] = None,
             seed: Annotated[int | None, typer.Option(show_default=False)] = None,
             hp: Annotated[list[str] | None, typer.Option("--hp", help="a hyperparameter: key=value (e.g. "
                                                          "num_epochs=1, lora_r=8)", show_default=False)] = None,
             priority: Priority = None, sets: Sets = None, body: Body = None, follow: Follow = False) -> None:
    """Start a LoRA fine-tuning job."""
    data = read_body(body)
    training = training_file if training_file.startswith("ds-") else file_id(cli.api, training_file, "fine-tune")
    validation = file_id(cli.api, validation_file, "fine-tune") if validation_file else None
    data.update(given(model=model, training_file=training, validation_file=validation, suffix=suffix, seed=seed,
                      priority=priority))
    if hp:
        data["hyperparameters"] = apply_sets(dict(data.get("hyperparameters") or {}), hp, "--hp")
    submit(cli, "/fine_tuning/jobs", apply_sets(data, sets), follow)


def generate(cli: Cli,
             teacher_model: Annotated[str, typer.Option("--teacher-model", help="the teacher: a model at "
                                                        "--teacher-url, or a lorafleet model with --local")],
             teacher_url: Annotated[str | None, typer.Option(help="the teacher's OpenAI-compatible /v1 URL",
                                                             show_default=False)] = None,
             teacher_key: Annotated[str | None, typer.Option(help="the teacher's API key (stored encrypted)",
                                                             show_default=False)] = None,
             local: Annotated[bool, typer.Option("--local", help="run the teacher on a lorafleet GPU worker")] = False,
             method: Annotated[str, typer.Option(help="self_instruct or alpaca")] = "self_instruct",
             num_instructions: Annotated[int, typer.Option("--num-instructions", "-n")] = 100,
             seed_file: Annotated[str | None, typer.Option(help="seed tasks: a file id or a local JSONL file "
                                                           "(default: the built-in seed tasks)",
                                                           show_default=False)] = None,
             budget_usd: Annotated[float | None, typer.Option(show_default=False)] = None,
             priority: Priority = None, sets: Sets = None, body: Body = None, follow: Follow = False) -> None:
    """Start a self-instruct data generation job."""
    data = read_body(body)
    teacher = {**(data.get("teacher") or {}), "model": teacher_model, **given(base_url=teacher_url,
                                                                              api_key=teacher_key)}
    if local:
        teacher["local"] = True
    seed = file_id(cli.api, seed_file, "seed_tasks") if seed_file else None
    data.update(given(method=method, num_instructions=num_instructions, teacher=teacher, seed_file=seed,
                      budget_usd=budget_usd, priority=priority))
    submit(cli, "/generation/jobs", apply_sets(data, sets), follow)


def batch(cli: Cli, input_file: Annotated[str, typer.Argument(help="a file id or a local batch JSONL file")],
          endpoint: Annotated[str, typer.Option(help="/v1/chat/completions or /v1/completions")] =
          "/v1/chat/completions",
          batch_size: Annotated[int | None, typer.Option(show_default=False)] = None,
          priority: Priority = None, sets: Sets = None, body: Body = None, follow: Follow = False) -> None:
    """Start a batch of chat or completion requests (OpenAI batch format)."""
    data = read_body(body)
    data.update(given(input_file_id=file_id(cli.api, input_file, "batch"), endpoint=endpoint,
                      batch_size=batch_size, priority=priority))
    submit(cli, "/batches", apply_sets(data, sets), follow)


def evaluate(cli: Cli, eval_file: Annotated[str, typer.Argument(help="a file id or a local eval JSONL file")],
             model: Annotated[list[str] | None, typer.Option("--model", "-m", help="a model to score (repeat): base "
                                                             "model, adapter, adapter:ckpt-step-N",
                                                             show_default=False)] = None,
             fine_tuning_job: Annotated[str | None, typer.Option(help="score its base model, checkpoints and "
                                                                 "adapter", show_default=False)] = None,
             metric: Annotated[list[str] | None, typer.Option("--metric", help="a metric (repeat; default "
                                                              "rouge_l, exact_match)", show_default=False)] = None,
             limit: Annotated[int | None, typer.Option(help="score only the first N rows", show_default=False)] = None,
             priority: Priority = None, sets: Sets = None, body: Body = None, follow: Follow = False) -> None:
    """Start an eval job: score models on an eval set."""
    data = read_body(body)
    data.update(given(eval_file=file_id(cli.api, eval_file, "evals"), models=model or None,
                      fine_tuning_job=fine_tuning_job, metrics=metric or None, limit=limit, priority=priority))
    submit(cli, "/evals/jobs", apply_sets(data, sets), follow)


def register(app: typer.Typer) -> None:
    client_command(app, "finetune")(finetune)
    client_command(app, "generate")(generate)
    client_command(app, "batch")(batch)
    client_command(app, "eval")(evaluate)
