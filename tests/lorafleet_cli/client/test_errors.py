"""The API's error body becomes the exit code and the lines a person reads (never a traceback)."""
from __future__ import annotations

import pytest

from lorafleet_cli.client.errors import AUTH, BAD_INPUT, FAILED, NOT_FOUND, CliError, exit_code_for_status


@pytest.mark.parametrize("status, code", [(400, BAD_INPUT), (409, BAD_INPUT), (413, BAD_INPUT), (422, BAD_INPUT),
                                          (401, AUTH), (403, AUTH), (404, NOT_FOUND), (500, FAILED), (503, FAILED)])
def test_status_to_exit_code(status, code):
    assert exit_code_for_status(status) == code


def test_a_refused_file_names_its_param_and_every_bad_line():
    body = {"error": {"message": "Invalid fine-tune file: line 2: not JSON", "type": "invalid_request_error",
                      "param": "file", "code": "invalid_file",
                      "lines": [{"line": 2, "code": "invalid_json", "message": "not JSON"},
                                {"line": 5, "code": "missing_field", "message": "no output", "param": "output"}]}}
    error = CliError.from_response(400, body, "")
    assert error.exit_code == BAD_INPUT and error.param == "file"
    assert error.render_lines() == ["error: Invalid fine-tune file: line 2: not JSON", "  param: file",
                                    "  code: invalid_file", "  line 2: not JSON", "  line 5 [output]: no output"]
    assert error.as_dict()["error"]["lines"] == body["error"]["lines"] and error.as_dict()["exit_code"] == 2


def test_every_invalid_field_of_a_422_is_shown():
    body = {"error": {"message": "a: bad", "param": "a", "code": "invalid_value",
                      "details": [{"param": "a", "message": "bad"}, {"param": "b.c", "message": "too big"}]}}
    lines = CliError.from_response(422, body, "").render_lines()
    assert lines[-1] == "  b.c: too big" and lines[1] == "  param: a"


def test_a_body_that_is_not_the_api_error_shape_keeps_its_status():
    error = CliError.from_response(502, None, "<html>bad gateway</html>")
    assert error.exit_code == FAILED and error.message == "HTTP 502: <html>bad gateway</html>"


def test_an_unexpected_failure_is_one_line_not_a_traceback(monkeypatch, tmp_path, capsys):
    from lorafleet_cli.client import api
    from lorafleet_cli.main import main

    monkeypatch.setenv("LORAFLEET_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("LORAFLEET_DEBUG", raising=False)
    monkeypatch.setattr(api.Api, "get", lambda self, path, **params: {"unexpected": "shape"})
    assert main(["jobs", "show", "ftjob-x", "--base-url", "http://127.0.0.1:9", "--api-key", "k"]) == FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: the client failed: KeyError") and "Traceback" not in err
