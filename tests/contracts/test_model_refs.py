"""Model-name parsing and the engine's view of a resolved name."""
from __future__ import annotations

from pathlib import Path

from contracts.model_refs import ModelNotFound, ModelRef, parse_model_name


def test_parse_adapter_and_checkpoint_names():
    a = parse_model_name("ft:base:x:ftjob-1")
    assert (a.adapter_name, a.checkpoint, a.is_checkpoint) == ("ft:base:x:ftjob-1", None, False)
    c = parse_model_name("ft:base:x:ftjob-1:ckpt-step-20")
    assert (c.adapter_name, c.checkpoint, c.is_checkpoint) == ("ft:base:x:ftjob-1", "20", True)


def test_target_of_base_and_adapter():
    assert ModelRef(name="b", kind="base", base_model="b").target == ("b", None, None)
    ref = ModelRef(name="ft:b:x:j", kind="adapter", base_model="b", adapter_path="/a", prompt_template="alpaca")
    assert ref.target == ("ft:b:x:j", Path("/a"), "alpaca")


def test_not_found_message_names_what_is_missing():
    assert ModelNotFound("m").message == "The model 'm' does not exist"
    assert ModelNotFound("m:ckpt-step-1", "checkpoint").message == "The checkpoint 'm:ckpt-step-1' does not exist"
    assert isinstance(ModelNotFound("m"), LookupError)
