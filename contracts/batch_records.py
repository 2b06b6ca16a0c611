"""OpenAI Batch input files, line by line: ``{"custom_id", "method": "POST", "url", "body"}`` with a
unique ``custom_id`` and a body the url's endpoint takes (torch-free; the API checks them at upload)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.records import LineError, ParseResult, RecordParser, iter_json_records, parse_records

BATCH_URLS = {"/v1/chat/completions", "/v1/completions"}


@dataclass
class BatchRequest:
    line: int
    custom_id: str
    url: str
    body: dict


def parse_batch_record(obj: Any, line: int) -> tuple[BatchRequest | None, LineError | None]:
    if not isinstance(obj, dict):
        return None, LineError(line, "wrong_type", "each line must be a JSON object")
    for key in ("custom_id", "method", "url", "body"):
        if key not in obj:
            return None, LineError(line, "missing_required_parameter", f"missing required parameter '{key}'", key)
    if not isinstance(obj["custom_id"], str) or not obj["custom_id"]:
        return None, LineError(line, "invalid_value", "'custom_id' must be a non-empty string", "custom_id")
    if obj["method"] != "POST":
        return None, LineError(line, "invalid_value", "'method' must be 'POST'", "method")
    if obj["url"] not in BATCH_URLS:
        return None, LineError(line, "invalid_url", f"'url' must be one of {sorted(BATCH_URLS)}", "url")
    body = obj["body"]
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return None, LineError(line, "invalid_value", "'body' must be an object with a string 'model'", "body.model")
    if obj["url"] == "/v1/chat/completions" and not isinstance(body.get("messages"), list):
        return None, LineError(line, "missing_required_parameter", "'body.messages' must be a list", "body.messages")
    if obj["url"] == "/v1/completions":
        from contracts.openai_logprobs import LogprobsError, prompt_inputs

        try:  # a string, a list of strings, token ids, or a list of token-id lists
            prompt_inputs(body.get("prompt"))
        except LogprobsError as exc:
            return None, LineError(line, exc.code, str(exc).replace("'prompt", "'body.prompt", 1), "body.prompt")
    return BatchRequest(line, obj["custom_id"], obj["url"], body), None


def unique_custom_ids(parse_record: RecordParser) -> RecordParser:
    """``parse_record`` that also refuses a ``custom_id`` an earlier good line already used."""
    seen: set[str] = set()

    def parse(obj: Any, line: int) -> tuple[BatchRequest | None, LineError | None]:
        req, err = parse_record(obj, line)
        if req is None:
            return None, err
        if req.custom_id in seen:
            return None, LineError(line, "duplicate_custom_id", f"custom_id {req.custom_id!r} repeats", "custom_id")
        seen.add(req.custom_id)
        return req, None

    return parse


def parse_batch_file(data: bytes, max_line_bytes: int = 1 << 20, max_errors: int = 100) -> ParseResult:
    """Parse an OpenAI Batch input file; duplicate custom_ids are errors."""
    res = parse_records(iter_json_records(data, max_line_bytes), unique_custom_ids(parse_batch_record), max_errors)
    res.format = "batch"
    return res
