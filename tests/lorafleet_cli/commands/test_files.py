"""``lorafleet files`` against a live API: the round trip, and a refused upload's reasons with exit code 2."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
ROWS = [{"instruction": "Say hi.", "input": "", "output": "Hi."}, {"instruction": "Say bye.", "input": "", "output": "Bye."}]


def test_upload_list_show_download_delete(live_api, user_key, run, tmp_path):
    flags = ("--base-url", live_api.url, "--api-key", user_key)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    up = run("files", "upload", path, "--purpose", "fine-tune", "--json", *flags)
    assert up.code == 0, up.err
    file_id = up.json["id"]
    assert up.json["purpose"] == "fine-tune" and up.json["bytes"] == path.stat().st_size
    listed = run("files", "list", "--json", *flags).json
    assert [f["id"] for f in listed["data"]] == [file_id]
    assert run("files", "show", file_id, "--json", *flags).json["filename"] == "train.jsonl"
    table = run("files", "list", *flags)
    assert table.code == 0 and file_id in table.out and "train.jsonl" in table.out
    dest = tmp_path / "back.jsonl"
    got = run("files", "download", file_id, "-o", dest, "--json", *flags)
    assert got.code == 0 and dest.read_bytes() == path.read_bytes() and got.json["bytes"] == path.stat().st_size
    gone = run("files", "delete", file_id, "--json", *flags)
    assert gone.code == 0 and gone.json == {"id": file_id, "object": "file", "deleted": True}
    assert run("files", "show", file_id, *flags).code == 4


def test_an_invalid_upload_prints_the_message_param_and_lines_and_exits_2(live_api, user_key, run, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n" + json.dumps({"instruction": "x"}) + "\n")
    result = run("files", "upload", path, "--base-url", live_api.url, "--api-key", user_key)
    assert result.code == 2 and result.out == ""
    assert "error: Invalid fine-tune file" in result.err and "param: file" in result.err
    assert "line 2" in result.err and "line 3" in result.err and "Traceback" not in result.err
    as_json = run("files", "upload", path, "--json", "--base-url", live_api.url, "--api-key", user_key)
    body = as_json.json
    assert as_json.code == 2 and body["exit_code"] == 2 and body["error"]["param"] == "file"
    assert [line["line"] for line in body["error"]["lines"]] == [2, 3]
    missing = run("files", "upload", tmp_path / "nope.jsonl", "--base-url", live_api.url, "--api-key", user_key)
    assert missing.code == 2 and "no such file" in missing.err
    usage = run("files", "upload")
    assert usage.code == 2 and "Missing argument" in usage.err
