"""Parsing crafted teacher responses exactly as the published pipelines do."""
from __future__ import annotations

from worker.ml.selfinstruct.parsing import (
    AlpacaItem,
    parse_alpaca_response,
    parse_bootstrap_response,
    parse_classification_instances,
    parse_generation_instances,
    parse_is_clf,
)


def test_bootstrap_split_normalise_capitalize():
    text = " Explain HTML tags  to a\tbeginner.\n10. name three  rivers in Asia.\n11 . Spaced number works\n12.No space: not a split"
    assert parse_bootstrap_response(text, "stop") == [
        "Explain html tags to a beginner.",  # str.capitalize lower-cases the rest (published quirk)
        "Name three rivers in asia.",
        "Spaced number works 12.no space: not a split",
    ]


def test_bootstrap_truncated_or_missing_response_is_dropped_whole():
    assert parse_bootstrap_response(" Do this.\n10. Do that", "length") is None
    assert parse_bootstrap_response(None, "stop") is None
    assert parse_bootstrap_response("", "error") is None


def test_bootstrap_misnumbered_and_duplicate_items_are_kept_for_the_filters():
    text = " First task here please.\n7. Second task here please.\n7. Second task here please.\n\n20. x"
    pieces = parse_bootstrap_response(text, "stop")
    assert pieces[:3] == ["First task here please.", "Second task here please.", "Second task here please."]


def test_alpaca_blocks_numbers_noinput_and_truncation():
    text = (" Give three tips for sleep.\n4. Input:\n<noinput>\n4. Output:\nGo to bed early.\n###\n"
            "5. Instruction: Fix the sentence.\n5. Input:\nhe go home\n5. Output:\nHe goes home.\n###\n"
            "7. Instruction: Wrong number.\n7. Input:\n<NoInput>\n7. Output:\nx\n###\n"
            "7. Instruction: Truncated last.\n7. Input:\nsome")
    items, bad = parse_alpaca_response(text, "stop")
    assert items == [AlpacaItem("Give three tips for sleep.", "", "Go to bed early."),
                     AlpacaItem("Fix the sentence.", "he go home", "He goes home.")]
    assert len(bad) == 2  # block 6 carries number 7; block 7 has too few parts
    items_len, bad_len = parse_alpaca_response(text, "length")
    assert items_len == items and len(bad_len) == 1  # the truncated last block is skipped silently


def test_alpaca_truncated_last_block_skipped_even_if_complete():
    text = " A complete task instruction.\n4. Input:\n<noinput>\n4. Output:\ndone"
    assert parse_alpaca_response(text, "length") == ([], [])
    assert parse_alpaca_response(text, "stop")[0] == [AlpacaItem("A complete task instruction.", "", "done")]


def test_is_clf_answers():
    assert parse_is_clf(" Yes") and parse_is_clf("yes\n") and parse_is_clf("YES")
    assert not parse_is_clf(" Yes.") and not parse_is_clf(" No") and not parse_is_clf("") and not parse_is_clf(None)


def test_generation_instances_examples_direct_output_and_truncation():
    text = "Example 1\nList: [3, 1]\nOutput: [1, 3]\nExample 2\nInput 2 - List: [2, 9]\nOutput: [2, 9]\nInput: extra"
    assert parse_generation_instances(text, "stop") == [("List: [3, 1]", "[1, 3]"), ("Input 2 - List: [2, 9]", "[2, 9]")]
    assert parse_generation_instances(text, "length") == [("List: [3, 1]", "[1, 3]")]
    assert parse_generation_instances("Output:\n- Plank\n- Squats", "stop") == [("", "- Plank\n- Squats")]
    assert parse_generation_instances("Input: hello\nOutput: bonjour", "stop") == [("hello", "bonjour")]
    assert parse_generation_instances("just some prose", "stop") == []
    assert parse_generation_instances(None, "error") == []


def test_classification_instances_label_first():
    text = "Class label: Positive\nSentence: Great day.\nClass label: Negative\nSentence: Awful.\nClass label: (b)"
    assert parse_classification_instances(text, "stop") == [("Sentence: Great day.", "Positive"),
                                                             ("Sentence: Awful.", "Negative"), ("", "(b)")]
    assert parse_classification_instances(text, "length")[-1] == ("Sentence: Awful.", "Negative")
    assert parse_classification_instances("Label: x", "stop") == []
