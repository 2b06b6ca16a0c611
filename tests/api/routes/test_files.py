"""``/v1/files``: upload checks naming every bad line whatever the bytes, ownership, content, paging."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.errors import APIError
from api.routes.files import validate_upload
from api.schemas.errors import ErrorResponse

ROW = '{"instruction": "Say hi", "input": "", "output": "hi"}\n'
DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 kB: a whole file (a JSON array)
DEEP_LINE = b"[" * 30_000 + b"]" * 30_000  # under the test settings' 64 kB line limit


def post(client, user, data: bytes, purpose: str = "fine-tune", filename: str = "data.jsonl"):
    return client.post("/v1/files", headers=user.headers, files={"file": (filename, data)}, data={"purpose": purpose})


def bad_lines(r) -> list[tuple[int, str]]:
    assert r.status_code == 400, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.param == "file"
    return [(x.line, x.code) for x in err.lines]


def test_upload_reports_its_format_and_records(client, alice, upload):
    f = upload(alice, ROW * 3)
    assert (f["object"], f["purpose"], f["bytes"]) == ("file", "fine-tune", len(ROW) * 3)
    assert f["info"] == {"format": "alpaca", "n_records": 3}


def test_every_bad_line_is_named(client, alice):
    data = (ROW + "{oops\n" + '{"instruction": "x"}\n').encode()
    assert bad_lines(post(client, alice, data)) == [(2, "invalid_json"), (3, "missing_field")]
    assert client.get("/v1/files", headers=alice.headers).json()["data"] == []  # nothing stored


@pytest.mark.parametrize("purpose", ["fine-tune", "batch", "evals"])
def test_deeply_nested_json_is_a_400_naming_the_line_and_the_connection_lives_on(client, alice, upload, purpose):
    assert (2, "json_too_deep") in bad_lines(post(client, alice, ROW.encode() + DEEP_LINE + b"\n", purpose))
    assert bad_lines(post(client, alice, DEEP, purpose)) == [(1, "json_too_deep")]  # as a JSON array
    assert client.get("/v1/me", headers=alice.headers).status_code == 200


@pytest.mark.parametrize("kwargs,status,param", [
    ({"files": {"file": ("a.jsonl", ROW)}, "data": {"purpose": "nonsense"}}, 400, "purpose"),
    ({"data": {"purpose": "fine-tune", "file": ROW}}, 400, "file"),  # a plain field, not a file part
    ({"files": {"file": ("a.jsonl", b" \n\n")}, "data": {"purpose": "fine-tune"}}, 400, "file"),
    ({"files": {"file": ("a.jsonl", b"x" * (1024 * 1024 + 1))}, "data": {"purpose": "user_data"}}, 413, "file"),
])
def test_bad_uploads_name_their_param(client, alice, kwargs, status, param):
    r = client.post("/v1/files", headers=alice.headers, **kwargs)
    assert r.status_code == status and r.json()["error"]["param"] == param, r.text


def test_control_characters_never_reach_the_stored_name(client, alice):
    """Postgres refuses NUL in text: a raw multipart name with one must not become a 500."""
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a\x00b\x1fc.jsonl"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + ROW.encode() + b"\r\n--XyZ--\r\n")
    r = client.post("/v1/files", content=body,
                    headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 200 and r.json()["filename"] == "abc.jsonl", r.text


def test_content_is_the_bytes_as_uploaded(client, alice, bob, upload):
    f = upload(alice, ROW, filename="mine.jsonl")
    r = client.get(f"/v1/files/{f['id']}/content", headers=alice.headers)
    assert r.content == ROW.encode() and r.headers["content-type"] == "application/octet-stream"
    assert "mine.jsonl" in r.headers["content-disposition"]


@pytest.mark.parametrize("method,suffix", [("get", ""), ("get", "/content"), ("delete", "")])
def test_another_users_file_is_a_404(client, alice, bob, upload, method, suffix):
    f = upload(alice, ROW)
    r = client.request(method.upper(), f"/v1/files/{f['id']}{suffix}", headers=bob.headers)
    assert r.status_code == 404 and r.json()["error"]["param"] == "file_id"
    assert client.get(f"/v1/files/{f['id']}", headers=alice.headers).status_code == 200


def test_delete_removes_the_file(client, alice, upload):
    f = upload(alice, ROW)
    assert client.delete(f"/v1/files/{f['id']}", headers=alice.headers).json() == {
        "id": f["id"], "object": "file", "deleted": True}
    assert client.get(f"/v1/files/{f['id']}", headers=alice.headers).status_code == 404


def test_paging_newest_first_with_after(client, alice, bob, upload):
    ids = [upload(alice, ROW, purpose="user_data")["id"] for _ in range(5)][::-1]
    upload(bob, ROW, purpose="user_data")
    seen, after = [], None
    while True:
        page = client.get("/v1/files", headers=alice.headers,
                          params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [f["id"] for f in page["data"]]
        assert page["last_id"] == (page["data"][-1]["id"] if page["data"] else None)
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids
    only = client.get("/v1/files?purpose=fine-tune", headers=alice.headers).json()
    assert only["data"] == [] and only["has_more"] is False


def test_listing_needs_a_key(client):
    assert client.get("/v1/files").status_code == 401


lines = st.one_of(st.binary(max_size=60), st.sampled_from([DEEP_LINE, b"9" * 5000, b"\xff\xfe",
                                                            ROW.encode().strip(), b"[", b"{}", b"\x00"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(purpose=st.sampled_from(["fine-tune", "batch", "evals"]), parts=st.lists(lines, max_size=6))
def test_whatever_the_bytes_an_upload_is_accepted_or_each_bad_line_is_named(purpose, parts):
    data = b"\n".join(parts)
    try:
        info = validate_upload(purpose, data, max_line_bytes=64 * 1024)
    except APIError as exc:
        assert exc.status == 400 and exc.param == "file" and exc.extra["lines"]
        n_lines = data.count(b"\n") + 1
        assert all(0 <= line["line"] <= n_lines for line in exc.extra["lines"]), exc.extra["lines"]
        json.dumps(exc.extra)  # the body renders
    else:
        assert info["n_records"] >= 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=300))
def test_random_uploads_over_http_end_in_200_or_a_precise_400(client, alice, data):
    r = post(client, alice, data)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["param"] == "file"
