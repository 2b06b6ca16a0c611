import json
from tests.integration.test_generation_flow import job_body, wait_status, all_events, teacher, db  # noqa

def test_show(api_client, make_user, start_worker, teacher, settings, db):
    _, alice = make_user()
    body = job_body(teacher, num_instructions=30, request_batch_size=1)
    body["teacher"].update(input_usd_per_1m=1000.0, output_usd_per_1m=1000.0, max_tokens=400)
    body["budget_usd"] = 1.2
    job = api_client.post("/v1/generation/jobs", headers=alice, json=body).json()
    w = start_worker(queues=("io",))
    try:
        done = wait_status(api_client, alice, job["id"], ("succeeded", "failed", "cancelled", "paused"), 60)
    finally:
        print(api_client.get(f"/v1/generation/jobs/{job['id']}", headers=alice).json())
        print(w.output()[-5000:])
    print(json.dumps(done, indent=1))
    for e in all_events(api_client, alice, job["id"]):
        print(e["level"], e["type"], e["message"])
    job = api_client.post("/v1/generation/jobs", headers=alice, json=job_body(teacher)).json()
    done = wait_status(api_client, alice, job["id"], ("succeeded", "failed", "cancelled", "paused"))
    print(json.dumps(done, indent=1))
    for e in all_events(api_client, alice, job["id"]):
        print(e["level"], e["type"], e["message"])
    ds = api_client.get(f"/v1/datasets/{done['dataset_id']}", headers=alice).json()
    print(json.dumps(ds, indent=1))
    print(json.dumps(api_client.get(f"/v1/datasets/{ds['id']}/rows", headers=alice, params={"limit": 2}).json(), indent=1))
    print(json.dumps(api_client.get(f"/v1/datasets/{ds['id']}/rows", headers=alice, params={"limit": 2, "filter": "rouge_l"}).json(), indent=1))
    print(w.output()[-3000:])
