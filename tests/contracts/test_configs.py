"""Hyperparameters: Alpaca-LoRA names and defaults, OpenAI aliases, precise errors."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.configs import FinetuneHyperparameters


def test_alpaca_lora_defaults():
    hp = FinetuneHyperparameters()
    assert (hp.batch_size, hp.micro_batch_size, hp.num_epochs, hp.learning_rate, hp.cutoff_len) == (128, 4, 3, 3e-4, 256)
    assert (hp.lora_r, hp.lora_alpha, hp.lora_dropout, hp.lora_target_modules) == (8, 16, 0.05, ["q_proj", "v_proj"])
    assert hp.train_on_inputs is False and hp.gradient_accumulation_steps == 32


def test_openai_names_map_onto_alpaca_names():
    hp = FinetuneHyperparameters.model_validate({"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2})
    assert hp.num_epochs == 2 and hp.batch_size == 8 and hp.learning_rate == pytest.approx(6e-4)
    assert FinetuneHyperparameters.model_validate({"n_epochs": "auto"}).num_epochs == 3


@pytest.mark.parametrize("bad,field", [({"lora_r": 0}, "lora_r"), ({"cutoff_len": "long"}, "cutoff_len"),
                                       ({"wat": 1}, "wat"), ({"lora_target_modules": []}, None)])
def test_errors_name_the_field(bad, field):
    with pytest.raises(ValidationError) as err:
        FinetuneHyperparameters.model_validate(bad)
    if field:
        assert err.value.errors()[0]["loc"][0] == field


def test_batch_must_be_a_multiple_of_micro_batch():
    with pytest.raises(ValidationError, match="multiple of micro_batch_size"):
        FinetuneHyperparameters(batch_size=10, micro_batch_size=4)


def test_method_types_supervised_dpo_and_reinforcement_parse():
    from contracts.configs import DpoHyperparameters, FineTuningMethod

    dpo = FineTuningMethod.model_validate({"type": "dpo", "dpo": {"hyperparameters": {
        "beta": 0.25, "batch_size": 8, "learning_rate_multiplier": 0.5, "n_epochs": 4, "micro_batch_size": 4}}})
    hp = dpo.hyperparameters()
    assert isinstance(hp, DpoHyperparameters)
    assert (hp.beta, hp.batch_size, hp.learning_rate, hp.num_epochs) == (0.25, 8, 1.5e-4, 4)
    assert FineTuningMethod.model_validate({"type": "dpo"}).hyperparameters().beta == 0.1
    assert type(FineTuningMethod().hyperparameters()).__name__ == "FinetuneHyperparameters"
    assert FineTuningMethod.model_validate({"type": "reinforcement"}).type == "reinforcement"
    for bad in ({"type": "dpo", "supervised": {}}, {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}},
                {"type": "dpo", "dpo": {"hyperparameters": {"gamma": 1}}}, {"type": "rlhf"}):
        with pytest.raises(ValidationError):
            FineTuningMethod.model_validate(bad)
