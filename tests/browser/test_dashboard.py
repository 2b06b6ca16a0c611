"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a live ``lorafleet up``:
sign in, submit a fine-tuning job from the page and watch its loss chart gain points while it trains, open an
eval report, stream an answer in the playground, a second user sees none of the first user's jobs, and a
request made with the cookie but without the CSRF token is refused. Screenshots go to test-artifacts/browser/."""
from __future__ import annotations

import io
import json
import time

import pytest

from tests.browser.conftest import BASE, training_rows
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def alice_key(up_stack) -> str:
    return up_stack.new_user("alice")


def signed_in_page(browser, up_stack, key: str, width: int = 1280, height: int = 800):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []  # uncaught script errors: each test ends by checking there were none
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.goto(up_stack.url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#topbar").wait_for(state="visible")
    return context, page


def close(context, page) -> None:
    errors = page.errors
    context.close()
    assert not errors, errors


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_sign_in_keeps_the_key_out_of_the_page_and_sets_a_strict_httponly_cookie(browser, up_stack, alice_key, screenshots):
    context, page = signed_in_page(browser, up_stack, alice_key)
    assert page.locator("#whoami").inner_text().startswith("alice-")
    assert alice_key not in page.content() and alice_key not in page.url
    assert page.get_by_label("API key").input_value() == ""
    [cookie] = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != alice_key
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    page.screenshot(path=screenshots / "01-signed-in-jobs.png")
    close(context, page)


def test_a_fine_tuning_job_submitted_from_the_page_draws_its_loss_live(browser, up_stack, alice_key, screenshots, tmp_path):
    context, page = signed_in_page(browser, up_stack, alice_key)
    data = tmp_path / "train.jsonl"
    data.write_text(training_rows(24))  # 23 steps (1 row held out): long enough to watch it run
    page.get_by_text("New fine-tuning job").click()
    page.locator("#ft-upload").set_input_files(str(data))
    for name, value in {"num_epochs": 1, "learning_rate": 0.003, "batch_size": 1, "micro_batch_size": 1, "cutoff_len": 64,
                        "save_steps": 10, "val_set_size": 1, "warmup_steps": 1}.items():
        page.locator(f"#ft-{name}").fill(str(value))
    page.get_by_label("Suffix", exact=True).fill("browser")
    page.get_by_role("button", name="Start fine-tuning").click()
    page.wait_for_url("**/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[1]
    chart = page.locator("#loss-chart")
    seen_while_running: list[int] = []
    deadline = time.time() + 300
    while time.time() < deadline:
        points = int(chart.get_attribute("data-train-points"))
        status = page.locator(".status").first.inner_text()
        if status == "running" and points and (not seen_while_running or points > seen_while_running[-1]):
            seen_while_running.append(points)
            if len(seen_while_running) == 1:
                page.screenshot(path=screenshots / "02-loss-chart-first-point.png", full_page=True)
        if status in TERMINAL:
            break
        time.sleep(0.25)
    assert status == "succeeded", up_stack.log.read_text(errors="replace")[-3000:]
    assert len(seen_while_running) >= 2, f"the chart did not grow while the job ran: {seen_while_running}"
    events = up_stack.api().get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=bearer(alice_key)).json()
    trained_steps = {e["data"]["step"] for e in events["data"] if e["type"] == "metrics" and "train_loss" in e["data"]}
    wait_for(lambda: int(chart.get_attribute("data-train-points")) == len(trained_steps), 20, 0.2, "every point drawn")
    assert int(chart.get_attribute("data-checkpoints")) >= 1 and page.locator(".checkpoint-mark").count() >= 1
    assert int(chart.get_attribute("data-valid-points")) >= 1 and page.locator(".pt-valid").count() >= 1
    assert page.locator("#progress-bar").get_attribute("value") == "100"
    assert "learning_rate" in page.locator("table").last.inner_text() or page.get_by_text("learning_rate").count()
    page.get_by_role("button", name="Show rendered examples and loss mask").click()
    page.locator("#samples pre .trained").first.wait_for(timeout=120_000)  # the preflight's loss mask, rendered
    assert "pineapple" in page.locator("#samples pre .trained").first.inner_text()
    page.screenshot(path=screenshots / "03-fine-tuning-done.png", full_page=True)
    adapter = page.locator("header + main a[href='#/adapters']").first.inner_text()
    page.get_by_role("navigation").get_by_role("link", name="Adapters").click()
    listed = page.locator("#adapters-list")
    listed.get_by_text(adapter, exact=True).wait_for()
    assert f"{adapter}:ckpt-step-10" in listed.inner_text()  # its checkpoints, each a model name
    page.get_by_role("navigation").get_by_role("link", name="Jobs").click()
    page.get_by_label("Search id or suffix").fill(job_id[-8:])
    wait_for(lambda: page.locator("#jobs-list tbody tr").count() == 1, 10, 0.2, "the search to keep one job")
    page.get_by_label("Kind").select_option("fine_tuning")
    page.get_by_label("Status").select_option("failed")
    page.locator("#jobs-list").get_by_text("No jobs match.").wait_for()
    close(context, page)


def test_a_dataset_shows_kept_rows_with_provenance_and_rejected_rows_with_their_filter(browser, up_stack, screenshots):
    from tests.integration.teacher_stub import start_teacher_stub

    key, api = up_stack.new_user("dora"), up_stack.api()
    stub, stop = start_teacher_stub()
    try:
        job = api.post("/v1/generation/jobs", headers=bearer(key), json={
            "method": "alpaca", "num_instructions": 10, "request_batch_size": 2,
            "teacher": {"base_url": stub.base_url, "model": "stub-teacher", "api": "completions", "api_key": "sk-stub",
                        "max_concurrency": 2, "max_retries": 0}}).json()
        assert job.get("id"), job
        done = wait_for(lambda: (j := api.get(f"/v1/generation/jobs/{job['id']}", headers=bearer(key)).json())["status"]
                        in TERMINAL and j, 180, 0.5, "the generation job")
    finally:
        stop()
    assert done["status"] == "succeeded", done
    ds = api.get(f"/v1/datasets/{done['dataset_id']}", headers=bearer(key)).json()
    context, page = signed_in_page(browser, up_stack, key)
    page.get_by_role("navigation").get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name=ds["name"]).click()
    rows = page.locator("#dataset-rows")
    rows.get_by_text(f"{min(ds['n_rows'], 50)} kept row(s) shown").wait_for()
    assert "teacher_model: stub-teacher" in rows.inner_text()  # provenance
    page.get_by_label("Verdict").select_option("rejected")
    rows.get_by_text("rejected row(s) shown").wait_for()
    assert "ROUGE-L" in rows.inner_text()
    rouge_filter = next(f for f in ds["rejected_by_filter"] if "rouge" in f)
    page.get_by_label("Rejected by").select_option(rouge_filter)
    rows.get_by_text(f"{ds['rejected_by_filter'][rouge_filter]} rejected row(s) shown").wait_for()
    body = rows.locator("tbody tr").first.inner_text()
    assert rouge_filter in body and any(ch.isdigit() for ch in body.split(rouge_filter)[-1])  # nearest + its score
    page.screenshot(path=screenshots / "07-dataset-rejected.png", full_page=True)
    close(context, page)


def test_an_eval_report_shows_scores_and_outputs_side_by_side(browser, up_stack, alice_key, screenshots):
    api, h = up_stack.api(), bearer(alice_key)
    rows = [{"instruction": "Repeat the word llama.", "input": "", "output": "llama"},
            {"instruction": "What is 2 + 2?", "input": "", "output": "4"},
            {"instruction": "Name a colour.", "input": "", "output": "purple"}]
    f = api.post("/v1/files", headers=h, files={"file": ("eval.jsonl", io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode()))},
                 data={"purpose": "evals"}).json()
    job = api.post("/v1/evals/jobs", headers=h, json={"eval_file": f["id"], "models": [BASE], "metrics": ["rouge_l"],
                                                        "sampling": {"max_new_tokens": 8, "temperature": 0}}).json()
    assert job.get("id"), job
    wait_for(lambda: api.get(f"/v1/evals/jobs/{job['id']}", headers=h, params={"include_report": False}).json()["status"]
             in TERMINAL, 240, 1.0, "the eval job")
    context, page = signed_in_page(browser, up_stack, alice_key)
    page.get_by_role("link", name="Evals").click()
    page.get_by_role("link", name=job["id"]).click()
    table = page.locator("#score-table")
    table.wait_for()
    assert BASE in table.inner_text() and "rouge_l" in table.inner_text()
    assert page.locator(".eval-row").count() == 3
    page.get_by_label("Sort rows by").select_option(label=f"rouge_l of {BASE}")
    report = api.get(f"/v1/evals/jobs/{job['id']}", headers=h).json()["report"]
    best = max(report["examples"], key=lambda r: r["outputs"][BASE].get("rouge_l") or 0)
    assert best["instruction"] in page.locator(".eval-row").first.inner_text()
    page.screenshot(path=screenshots / "04-eval-report.png", full_page=True)
    close(context, page)


def test_the_playground_streams_an_answer_and_shows_the_request(browser, up_stack, alice_key, screenshots):
    context, page = signed_in_page(browser, up_stack, alice_key, width=390, height=844)  # a phone's width
    page.goto(up_stack.url + "/#/playground")
    page.get_by_label("Model").select_option(BASE)
    page.get_by_label("Instruction").fill("Write one sentence about llamas.")
    page.get_by_label("Max tokens").fill("24")
    page.get_by_label("Temperature").fill("0")
    assert page.get_by_label("Stream the answer").is_checked()
    snippet = page.locator("#request-snippet").inner_text()
    assert '"stream": true' in snippet and f'"model": "{BASE}"' in snippet and alice_key not in snippet
    page.get_by_role("button", name="Generate").click()
    answer = page.locator("#answer[data-done='true']")
    answer.wait_for(timeout=180_000)
    assert answer.inner_text().strip()
    assert int(answer.get_attribute("data-chunks")) > 1  # it arrived in pieces
    page.screenshot(path=screenshots / "05-playground-phone.png", full_page=True)
    close(context, page)


def test_a_second_user_sees_none_of_the_first_users_jobs(browser, up_stack, screenshots):
    carol = up_stack.new_user("carol")
    api = up_stack.api()
    f = api.post("/v1/files", headers=bearer(carol), files={"file": ("t.jsonl", io.BytesIO(training_rows(2).encode()))},
                 data={"purpose": "fine-tune"}).json()
    job = api.post("/v1/preflight/jobs", headers=bearer(carol), json={"model": BASE, "training_file": f["id"]}).json()
    context, page = signed_in_page(browser, up_stack, up_stack.new_user("bob"))
    page.locator("#jobs-list").get_by_text("No jobs match.").wait_for()
    assert page.evaluate("fetch('/v1/jobs').then(r => r.json())")["data"] == []
    page.goto(f"{up_stack.url}/#/jobs/{job['id']}")
    page.get_by_role("alert").wait_for()
    assert f"No job found with id '{job['id']}'" in page.get_by_role("alert").inner_text()
    page.screenshot(path=screenshots / "06-second-user.png")
    close(context, page)


def test_a_state_change_without_the_csrf_token_is_refused(browser, up_stack, alice_key):
    context, page = signed_in_page(browser, up_stack, alice_key)
    refused = page.evaluate("""async () => {
        const r = await fetch('/v1/chat/completions', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({model: 'smollm2-135m-instruct', messages: [{role: 'user', content: 'hi'}]})});
        return {status: r.status, body: await r.json()};
    }""")
    assert refused["status"] == 403, refused
    assert refused["body"]["error"]["code"] == "csrf_token_invalid" and refused["body"]["error"]["param"] == "X-CSRF-Token"
    sign_out = page.evaluate("fetch('/v1/web/session', {method: 'DELETE'}).then(r => r.status)")
    assert sign_out == 403
    assert page.evaluate("fetch('/v1/me').then(r => r.status)") == 200  # still signed in: nothing changed
    close(context, page)
    assert alice_key not in up_stack.log.read_text(errors="replace")  # nor in any log line


def test_pool_and_usage_show_own_usage_and_to_admins_the_workers(browser, up_stack, alice_key, screenshots):
    context, page = signed_in_page(browser, up_stack, alice_key)
    page.get_by_role("navigation").get_by_role("link", name="Pool & usage").click()
    page.locator("#usage").wait_for()
    assert page.locator("#pool").count() == 0  # not an admin: no pool
    close(context, page)
    context, page = signed_in_page(browser, up_stack, up_stack.admin_key)
    page.goto(up_stack.url + "/#/pool")
    pool = page.locator("#pool")
    pool.wait_for()
    assert "alive" in pool.inner_text() and "Fair share" in pool.inner_text()
    page.screenshot(path=screenshots / "08-pool-admin.png", full_page=True)
    close(context, page)


def test_a_waiting_job_shows_why_and_its_buttons_pause_resume_and_cancel_it(browser, up_stack, screenshots):
    """Erin has no GPU-hours left today, so her job waits in line: the page says where and why, and the
    buttons act on it at once (a running job would pause at its next checkpoint instead)."""
    key, api = up_stack.new_user("erin", gpu_hours_per_day=0), up_stack.api()
    f = api.post("/v1/files", headers=bearer(key), files={"file": ("t.jsonl", io.BytesIO(training_rows(8).encode()))},
                 data={"purpose": "fine-tune"}).json()
    job = api.post("/v1/fine_tuning/jobs", headers=bearer(key), json={
        "model": BASE, "training_file": f["id"], "hyperparameters": {"batch_size": 1, "micro_batch_size": 1, "num_epochs": 20,
                                                                      "cutoff_len": 64, "save_steps": 1}}).json()
    context, page = signed_in_page(browser, up_stack, key)
    page.goto(f"{up_stack.url}/#/jobs/{job['id']}")
    status = page.locator(".status").first

    def reaches(*wanted: str, timeout: float = 150) -> str:
        return wait_for(lambda: (s := status.inner_text()) in wanted and s, timeout, 0.3, f"the job to be {wanted}")

    queue_info = page.locator("#queue-info")
    queue_info.wait_for(timeout=60_000)
    assert "Queue position" in queue_info.inner_text() and "GPU" in queue_info.inner_text(), queue_info.inner_text()
    page.screenshot(path=screenshots / "09-waiting.png")
    page.get_by_role("button", name="Pause").click()
    reaches("paused", timeout=30)  # waiting: out of the line at once
    assert page.get_by_role("button", name="Resume").is_enabled() and page.get_by_role("button", name="Pause").is_disabled()
    page.screenshot(path=screenshots / "10-paused.png")
    page.get_by_role("button", name="Resume").click()
    reaches("validating_files", "queued", timeout=30)
    page.get_by_role("button", name="Cancel").click()
    reaches("cancelled", timeout=30)
    assert page.get_by_role("button", name="Cancel").is_disabled()
    close(context, page)
