"""The dashboard's sign-in (``api.routes.web_session``) and cookie auth with CSRF (``api.deps``): the real app
on its own database. The API key goes in once; the cookie stands for it until it expires, is signed out,
or its key is revoked; a state change made with the cookie needs the CSRF token; Bearer keys are unaffected."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from api.deps import CSRF_HEADER, SESSION_COOKIE


def sign_in(client, user) -> dict:
    r = client.post("/v1/web/session", json={"api_key": user.key})
    assert r.status_code == 200, r.text
    return r.json()


def test_sign_in_sets_a_strict_httponly_expiring_cookie_and_returns_a_csrf_token(client, alice, settings):
    r = client.post("/v1/web/session", json={"api_key": alice.key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == alice.id and len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert f"max-age={settings.web_session_s}" in flags
    assert "secure" not in flags  # plain http here: the test below checks https
    assert alice.key not in cookie and alice.key not in r.text  # the key is never echoed back


def test_cookie_is_secure_behind_tls(app):
    from fastapi.testclient import TestClient

    from models.crud.users import create_user
    from models.db import session_scope

    with TestClient(app, base_url="https://dash.example") as c:
        with session_scope(app.state.session_factory) as s:
            key = create_user(session=s, name="tls-user")[1]
        r = c.post("/v1/web/session", json={"api_key": key})
        assert r.status_code == 200, r.text
        assert "secure" in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]


def test_a_wrong_key_is_refused_naming_the_field(client):
    r = client.post("/v1/web/session", json={"api_key": "lf-not-a-key"})
    assert r.status_code == 401
    assert r.json()["error"]["param"] == "api_key" and "set-cookie" not in r.headers


def test_the_cookie_authenticates_reads_as_the_keys_user(client, alice, bob):
    sign_in(client, alice)
    me = client.get("/v1/me")
    assert me.status_code == 200 and me.json()["id"] == alice.id
    assert client.get("/v1/web/session").json()["user"]["id"] == alice.id


def test_a_state_change_with_the_cookie_and_no_csrf_token_is_refused(client, alice):
    sign_in(client, alice)
    r = client.post("/v1/users/" + alice.id + "/keys", json={"name": "x"})
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "csrf_token_invalid" and err["param"] == CSRF_HEADER
    assert "CSRF token" in err["message"] and "missing" in err["message"]
    wrong = client.post("/v1/users/" + alice.id + "/keys", json={"name": "x"}, headers={CSRF_HEADER: "nope"})
    assert wrong.status_code == 403 and "wrong" in wrong.json()["error"]["message"]


def test_a_state_change_with_the_cookie_and_its_csrf_token_goes_through(client, alice):
    token = sign_in(client, alice)["csrf_token"]
    r = client.post("/v1/users/" + alice.id + "/keys", json={"name": "x"}, headers={CSRF_HEADER: token})
    assert r.status_code == 201, r.text


def test_bearer_requests_need_no_csrf_token_even_beside_a_cookie(client, alice, bob):
    sign_in(client, alice)
    r = client.post("/v1/users/" + bob.id + "/keys", json={"name": "y"}, headers=bob.headers)
    assert r.status_code == 201, r.text  # the Bearer key wins: bob's, no CSRF needed
    assert client.get("/v1/me", headers=bob.headers).json()["id"] == bob.id


def test_revoking_the_key_ends_its_sessions_at_once(client, alice):
    sign_in(client, alice)
    key_id = client.get(f"/v1/users/{alice.id}/keys", headers=alice.headers).json()["data"][0]["id"]
    assert client.delete(f"/v1/users/{alice.id}/keys/{key_id}", headers=alice.headers).status_code == 200
    r = client.get("/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"


def test_an_expired_session_is_refused(client, alice, app):
    from models.base import utcnow
    from models.web_session import WebSession

    sid = sign_in(client, alice)["id"]
    with app.state.session_factory() as s:
        s.execute(update(WebSession).where(WebSession.id == sid).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    r = client.get("/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"


def test_sign_out_needs_the_token_then_ends_the_session(client, alice):
    token = sign_in(client, alice)["csrf_token"]
    assert client.delete("/v1/web/session").status_code == 403
    cookie = client.cookies.get(SESSION_COOKIE)
    r = client.delete("/v1/web/session", headers={CSRF_HEADER: token})
    assert r.status_code == 200, r.text
    assert client.get("/v1/me").status_code == 401
    client.cookies.set(SESSION_COOKIE, cookie)  # the old cookie replayed: still dead
    assert client.get("/v1/me").status_code == 401


def test_the_cookie_sees_only_its_users_jobs(client, alice, bob, upload):
    f = upload(bob, '{"instruction": "a", "input": "", "output": "b"}\n')
    r = client.post("/v1/fine_tuning/jobs", headers=bob.headers, json={"model": "smollm2-135m-instruct",
                                                                        "training_file": f["id"]})
    assert r.status_code == 200, r.text
    sign_in(client, alice)
    assert client.get("/v1/jobs").json()["data"] == []
    assert client.get(f"/v1/jobs/{r.json()['id']}").status_code == 404


@pytest.mark.parametrize("path", ["/", "/dashboard/static/app.js", "/dashboard/static/style.css"])
def test_the_dashboard_is_served_with_a_strict_content_security_policy(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_a_form_post_from_another_site_cannot_sign_a_browser_in(client, alice):
    """HTML forms can only send form encodings cross-site; the sign-in takes JSON alone (no login CSRF)."""
    r = client.post("/v1/web/session", data={"api_key": alice.key})
    assert r.status_code == 422 and "set-cookie" not in r.headers
