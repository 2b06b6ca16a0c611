"""The routes every kind shares (``api.routes.job_lifecycle``), for every kind, as one walk per kind
(a test database costs more than a request): create -> retrieve -> list paging -> events paging ->
another user's 404s -> pause / resume state rules -> cancel; every answer valid against the route's
read model."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.schemas.batches import BatchRead
from api.schemas.common import ListRead
from api.schemas.jobs import EventRead, JobRead
from models.db import session_scope
from models.job import Job
from tests.api.routes.job_kit import KINDS, Kind, add_events, error_of, submit, update_job


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=repr)
def test_the_lifecycle_of_every_kind(client, app, alice, bob, upload, kind):
    ids = [submit(client, upload, alice, kind)["id"] for _ in range(3)]
    submit(client, upload, bob, kind)  # never in alice's pages
    check_retrieve(client, app, alice, kind, ids[0])
    check_list_paging(client, alice, kind, ids)
    if "events" in kind.spec.operations:
        check_events_paging(client, app, alice, kind, ids[0])
    check_other_users_get_404s(client, bob, kind, ids[0])
    if kind.spec.kind_value in ("fine_tuning", "generation"):
        check_pause_and_resume(client, app, alice, kind, ids[1])
    check_cancel(client, alice, kind, ids[2])


def check_retrieve(client, app, user, kind: Kind, job_id: str) -> None:
    r = client.get(f"{kind.url}/{job_id}", headers=user.headers)
    assert r.status_code == 200 and r.json()["id"] == job_id, r.text
    kind.spec.read.model_validate(r.json())
    assert r.json()["object"] == kind.spec.object
    common = client.get(f"/v1/jobs/{job_id}", headers=user.headers).json()
    JobRead.model_validate(common)
    assert common["kind"] == kind.spec.kind_value and common["object"] == kind.spec.object
    # no dispatcher has placed it yet; then what its pass writes on the row is what a poll shows
    assert (common["queue_position"], common["estimated_start"], common["waiting_reason"]) == (None, None, None)
    update_job(app, job_id, queue_position=3, estimated_start=datetime(2030, 1, 2, tzinfo=UTC),
               waiting_reason="2 jobs of users below their share go first")
    views = [client.get(f"/v1/jobs/{job_id}", headers=user.headers).json()]
    views += [] if kind.spec.read is BatchRead else [client.get(f"{kind.url}/{job_id}", headers=user.headers).json()]
    for view in views:
        assert (view["queue_position"], view["estimated_start"], view["waiting_reason"]) == (
            3, int(datetime(2030, 1, 2, tzinfo=UTC).timestamp()), "2 jobs of users below their share go first")


def check_list_paging(client, user, kind: Kind, ids: list[str]) -> None:
    page = client.get(kind.url, headers=user.headers, params={"limit": 2}).json()
    ListRead[kind.spec.read].model_validate(page)
    assert [j["id"] for j in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    assert page["first_id"] == ids[2] and page["last_id"] == ids[1]
    rest = client.get(kind.url, headers=user.headers, params={"limit": 2, "after": page["last_id"]}).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and rest["has_more"] is False
    every = client.get("/v1/jobs", headers=user.headers, params={"kind": kind.spec.kind_value}).json()
    ListRead[JobRead].model_validate(every)
    assert [j["id"] for j in every["data"]] == ids[::-1]
    r = client.get(kind.url, headers=user.headers, params={"limit": 0})
    assert r.status_code == 422 and error_of(r)["param"] == "limit"


def check_events_paging(client, app, user, kind: Kind, job_id: str) -> None:
    add_events(app, job_id, 4)  # 5 events with the "Created" one
    url = f"{kind.url}/{job_id}/events"
    first = client.get(url, headers=user.headers, params={"limit": 2}).json()
    ListRead[EventRead].model_validate(first)
    assert [e["message"] for e in first["data"]] == ["step 3", "step 2"] and first["has_more"] is True
    rest = client.get(url, headers=user.headers, params={"limit": 10, "after": first["last_id"]}).json()
    created = f"Created {kind.spec.kind_value} job {job_id}"
    assert [e["message"] for e in rest["data"]] == ["step 1", "step 0", created] and rest["has_more"] is False
    asc = client.get(url, headers=user.headers, params={"order": "asc", "after": rest["data"][1]["id"]}).json()
    assert [e["message"] for e in asc["data"]] == ["step 1", "step 2", "step 3"]
    for cursor in ("yesterday", "ev-99999999999", "ev-\u0663"):
        bad = client.get(url, headers=user.headers, params={"after": cursor})
        assert bad.status_code == 400 and error_of(bad)["param"] == "after", bad.text
    assert client.get(url, headers=user.headers, params={"order": "up"}).status_code == 422


def check_other_users_get_404s(client, other, kind: Kind, job_id: str) -> None:
    calls = [("GET", ""), ("POST", "/cancel")]
    calls += [("POST", f"/{op}") for op in ("pause", "resume") if op in kind.spec.operations]
    calls += [("GET", "/events")] if "events" in kind.spec.operations else []
    for method, tail in calls:
        r = client.request(method, f"{kind.url}/{job_id}{tail}", headers=other.headers)
        assert r.status_code == 404 and error_of(r)["param"] == kind.spec.id_param, (tail, r.text)
    r = client.get(f"/v1/jobs/{job_id}", headers=other.headers)
    assert r.status_code == 404 and error_of(r)["param"] == "job_id"
    r = client.get(f"{kind.url}/{job_id}%00", headers=other.headers)
    assert r.status_code == 404 and error_of(r)["param"] == kind.spec.id_param
    assert client.get(f"{kind.url}/{job_id}", headers={"Authorization": "Bearer nope"}).status_code == 401


def check_pause_and_resume(client, app, user, kind: Kind, job_id: str) -> None:
    update_job(app, job_id, status="queued")  # a fine-tuning job waits in validating_files first
    url = f"{kind.url}/{job_id}"
    paused = client.post(f"{url}/pause", headers=user.headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    kind.spec.read.model_validate(paused.json())
    again = client.post(f"{url}/pause", headers=user.headers)
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"
    assert error_of(again)["param"] == kind.spec.id_param
    resumed = client.post(f"{url}/resume", headers=user.headers)
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued", resumed.text
    kind.spec.read.model_validate(resumed.json())
    r = client.post(f"{url}/resume", headers=user.headers)
    assert r.status_code == 409 and error_of(r)["code"] == "invalid_state"
    update_job(app, job_id, status="running", lease_owner="worker-1")
    running = client.post(f"{url}/pause", headers=user.headers)  # stops at its next checkpoint
    assert running.status_code == 200 and running.json()["status"] == "running"
    with session_scope(app.state.session_factory) as s:
        assert (s.get(Job, job_id).pause_requested, s.get(Job, job_id).pause_reason) == (True, "user")
    update_job(app, job_id, status="succeeded")
    assert client.post(f"{url}/pause", headers=user.headers).status_code == 409


def check_cancel(client, user, kind: Kind, job_id: str) -> None:
    for _ in range(2):  # cancelling an ended job is harmless
        r = client.post(f"{kind.url}/{job_id}/cancel", headers=user.headers)
        assert r.status_code == 200, r.text
        kind.spec.read.model_validate(r.json())
        assert r.json()["status"] == "cancelled"


def test_kinds_answer_only_their_routes_and_jobs(client, alice, upload):
    ft = submit(client, upload, alice, KINDS["fine_tuning"])
    r = client.get(f"/v1/generation/jobs/{ft['id']}", headers=alice.headers)
    assert r.status_code == 404 and error_of(r)["param"] == "generation_job_id"
    ev, batch = submit(client, upload, alice, KINDS["eval"]), submit(client, upload, alice, KINDS["batch"])
    assert client.get(f"/v1/evals/jobs/{ev['id']}/events", headers=alice.headers).status_code in (404, 405)
    assert client.post(f"/v1/batches/{batch['id']}/pause", headers=alice.headers).status_code in (404, 405)
    events = client.get(f"/v1/jobs/{batch['id']}/events", headers=alice.headers)  # /v1/jobs reaches every job
    assert events.status_code == 200 and ListRead[EventRead].model_validate(events.json())
    paused = client.post(f"/v1/jobs/{ev['id']}/pause", headers=alice.headers)
    assert paused.status_code == 200 and JobRead.model_validate(paused.json()).status == "paused"
    kinds = sorted(j["kind"] for j in client.get("/v1/jobs", headers=alice.headers).json()["data"])
    assert kinds == ["batch", "eval", "fine_tuning"]


def test_every_job_route_declares_what_it_answers(app):
    """``/openapi.json`` describes each job route's success body: a schema for every media type it sends."""
    prefixes = ("/v1/jobs", "/v1/preflight", "/v1/fine_tuning", "/v1/generation", "/v1/evals", "/v1/batches",
                "/v1/adapters")
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith(prefixes)}
    operations = [(p, method, op) for p, ops in paths.items() for method, op in ops.items()]
    assert len(operations) >= 40 and "/v1/preflight/jobs/{job_id}" in paths and "/v1/batches/{batch_id}" in paths
    for path, method, op in operations:
        content = op["responses"]["200"]["content"]
        assert content and all(media.get("schema") for media in content.values()), (method, path, content)


def test_every_kind_is_declared_with_a_view():
    from api.job_kinds import JOB_KINDS
    from api.job_views import KIND_VIEWS
    from models.job import JobKind

    assert set(JOB_KINDS) == {k.value for k in JobKind} and set(KIND_VIEWS) == {None, *JobKind}
    routed = [s for s in JOB_KINDS.values() if s.prefix]
    assert len({s.prefix for s in routed}) == len(routed) and len({s.object for s in JOB_KINDS.values()}) == 6
