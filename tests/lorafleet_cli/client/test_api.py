"""Server-sent events as the API writes them become (event, data) pairs."""
from __future__ import annotations

from lorafleet_cli.client.api import parse_sse


def test_named_and_unnamed_events_multi_line_data_and_a_last_event_without_a_blank_line():
    lines = ["id: ev-1", "event: metrics", 'data: {"step": 1}', "", ": a comment", "data: a", "data: b", "",
             "", "event: end", 'data: {"status": "succeeded"}']
    assert list(parse_sse(iter(lines))) == [("metrics", '{"step": 1}'), ("message", "a\nb"),
                                            ("end", '{"status": "succeeded"}')]


def test_openai_chunks_then_done():
    lines = ['data: {"choices": []}', "", "data: [DONE]", ""]
    assert list(parse_sse(iter(lines))) == [("message", '{"choices": []}'), ("message", "[DONE]")]
