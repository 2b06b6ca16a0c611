"""config.json: complete and true in every adapter and checkpoint folder, read back for serving,
and harmless to plain PEFT / transformers loading."""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from contracts.configs import FinetuneHyperparameters
from contracts.records import parse_training_file
from contracts.run_config import (
    RUN_CONFIG_FILE,
    DataFileRecord,
    RunConfig,
    examples_sha256,
    read_prompt_template,
    read_run_config,
)
from worker.ml.decoding.adapter_cache import read_adapter_template
from worker.ml.training.checkpoints import list_checkpoints
from worker.ml.training.data import split_train_val
from worker.ml.training.finetune import train_lora
from worker.ml.training.run_setup import RunSources


def _write_training_file(path: Path, n: int = 24) -> bytes:
    rows = [{"instruction": f"Name colour {i}", "input": "", "output": f"Colour {i} is {'red' if i % 2 else 'blue'}."}
            for i in range(n)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return data


@pytest.fixture(scope="module")
def trained(tiny_llama_dir, tmp_path_factory):
    """One short run from a JSONL file on disk: 2 checkpoints, a seeded validation split, chat template."""
    root = tmp_path_factory.mktemp("run-config")
    data = _write_training_file(root / "train.jsonl")
    examples = parse_training_file(data, 1 << 20).records
    hp = FinetuneHyperparameters(batch_size=8, micro_batch_size=4, num_epochs=2, warmup_steps=1, val_set_size=4,
                                 n_checkpoints=2, prompt_template="alpaca_short", precision="fp32")
    file_record = DataFileRecord(role="training", file_id="file-abc", sha256=hashlib.sha256(data).hexdigest(),
                                 size_bytes=len(data))
    res = train_lora(base_model_dir=tiny_llama_dir, train_examples=examples, val_examples=None, hp=hp,
                     out_dir=root / "out", sources=RunSources(base_model_name="tiny-llama", data_files=[file_record]))
    return {"res": res, "hp": hp, "data": data, "examples": examples, "out": root / "out", "base": tiny_llama_dir}


def _assert_complete_and_true(cfg: RunConfig, trained: dict, artifact: str, step: int) -> None:
    res, hp = trained["res"], trained["hp"]
    assert (cfg.artifact, cfg.step, cfg.total_steps) == (artifact, step, res["total_steps"])
    assert cfg.hyperparameters == hp and cfg.prompt_template == "alpaca_short"
    base = trained["base"]
    assert cfg.base_model.name == "tiny-llama" and cfg.base_model.path == str(Path(base).resolve())
    assert cfg.base_model.config_sha256 == hashlib.sha256((base / "config.json").read_bytes()).hexdigest()
    [file] = cfg.data.files
    assert file.file_id == "file-abc" and file.role == "training"
    assert file.sha256 == hashlib.sha256(trained["data"]).hexdigest() and file.size_bytes == len(trained["data"])
    train_split, _ = split_train_val(trained["examples"], hp.val_set_size, hp.seed)
    assert cfg.data.train_examples_sha256 == examples_sha256(train_split)
    assert (cfg.data.n_train, cfg.data.n_val) == (res["n_train"], res["n_val"]) == (20, 4)
    assert cfg.libraries["torch"] == torch.__version__
    for name in ("transformers", "peft", "lorafleet"):
        assert cfg.libraries[name] == metadata.version(name)
    assert cfg.runtime.device == res["device"] == "cpu" and cfg.runtime.precision == res["precision"] == "fp32"
    assert cfg.runtime.frozen_weights_dtype == "float32" and cfg.runtime.grad_scaler is False


def test_adapter_folder_has_a_complete_true_config(trained):
    adapter = Path(trained["res"]["adapter_dir"])
    raw = json.loads((adapter / RUN_CONFIG_FILE).read_text())
    assert set(raw) == set(RunConfig.model_fields)  # every field written, none unknown
    _assert_complete_and_true(read_run_config(adapter), trained, "adapter", trained["res"]["steps"])


def test_every_checkpoint_folder_has_a_complete_true_config(trained):
    checkpoints = list_checkpoints(trained["out"])
    assert [p.name for p in checkpoints] == ["step-3", "step-6"]
    for path in checkpoints:
        _assert_complete_and_true(read_run_config(path), trained, "checkpoint", int(path.name.split("-")[1]))
    assert not list(trained["out"].rglob(".tmp-*"))


def test_serving_reads_the_template_from_config_json(trained, tmp_path):
    adapter = Path(trained["res"]["adapter_dir"])
    assert read_adapter_template(adapter) == read_prompt_template(adapter) == "alpaca_short"
    legacy = tmp_path / "legacy"  # an adapter written before config.json: lorafleet.json still serves
    legacy.mkdir()
    (legacy / "lorafleet.json").write_text('{"prompt_template": "chat"}')
    assert read_adapter_template(legacy) == "chat"
    (legacy / RUN_CONFIG_FILE).write_text(json.dumps({"model_type": "llama"}))  # not ours: ignored
    assert read_run_config(legacy) is None and read_adapter_template(legacy) == "chat"
    (legacy / RUN_CONFIG_FILE).write_text((adapter / RUN_CONFIG_FILE).read_text())
    assert read_adapter_template(legacy) == "alpaca_short"  # config.json wins over the legacy file


def test_plain_peft_loads_the_folder_and_transformers_direct_load_is_refused(trained):
    """PEFT reads only adapter_config.json. transformers (5.x) takes a folder holding both config.json
    and adapter_config.json for a full model with an embedded adapter, so loading the adapter folder
    straight through AutoModelForCausalLM fails (it did load the base + adapter before config.json)."""
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    adapter = Path(trained["res"]["adapter_dir"])
    base = AutoModelForCausalLM.from_pretrained(trained["base"], dtype=torch.float32)
    assert "default" in PeftModel.from_pretrained(base, str(adapter)).peft_config
    assert "default" in AutoPeftModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32).peft_config
    with pytest.raises(ValueError, match="model_type"):
        AutoModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32)


def test_template_must_match_the_hyperparameters(trained):
    cfg = read_run_config(Path(trained["res"]["adapter_dir"]))
    with pytest.raises(ValueError, match="prompt_template"):
        RunConfig.model_validate({**cfg.model_dump(mode="json"), "prompt_template": "chat"})
    with pytest.raises(ValueError, match="extra"):
        RunConfig.model_validate({**cfg.model_dump(mode="json"), "surprise": 1})
