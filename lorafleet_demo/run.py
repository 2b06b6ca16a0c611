"""`lorafleet demo`: the whole story on the embedded default, on CPU, in a few minutes.

It starts a private lorafleet (`lorafleet up` on SQLite + the embedded broker), then over HTTP:
1. a self-instruct job (Self-Instruct's four steps) from the English tasks of the shipped seed file,
   with lorafleet's own `/v1/completions` (the base model) as the teacher;
2. a fine-tuning job on the generated rows plus a slice of the shipped Alpaca-format demo file;
3. an eval job: base model vs the new adapter on held-out demo rows;
and prints the score table and where to look. Re-running it reuses the jobs that already succeeded.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from worker.ml.evaluation.rouge_l import contains_cjk
from worker.ml.selfinstruct.seeds import load_seed_tasks

BASE = "smollm2-135m-instruct"
DEMO_DATA = Path(__file__).parent / "demo_alpaca.json"
HELD_OUT = 12


def say(msg: str) -> None:
    print(msg, flush=True)


class Demo:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.state_file = data_dir / "demo_state.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state, indent=1))

    # --- the instance
    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        log = open(self.data_dir / "demo-server.log", "ab")  # noqa: SIM115 - the child's log
        self.proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", "up", "--data-dir",
                                      str(self.data_dir), "--port", str(self.port)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"lorafleet up exited; see {self.data_dir / 'demo-server.log'}")
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        admin = {"Authorization": f"Bearer {(self.data_dir / 'admin.key').read_text().strip()}"}
        if "api_key" not in self.state:
            r = self.http.post("/v1/users", headers=admin, json={"name": f"demo-{int(time.time())}"})
            r.raise_for_status()
            self.state["api_key"] = r.json()["api_key"]
            self.save()
        self.http.headers["Authorization"] = f"Bearer {self.state['api_key']}"
        say(f"      API {self.url}/v1 — data dir {self.data_dir}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    # --- jobs
    def follow(self, job_id: str, show=lambda ev: True) -> dict:
        """Print the job's events as they come; return the finished job."""
        after = None
        while True:
            params = {"order": "asc", "limit": 100, **({"after": after} if after else {})}
            page = self.http.get(f"/v1/jobs/{job_id}/events", params=params).json()
            for ev in page["data"]:
                after = ev["id"]
                if show(ev):
                    say(f"      {ev['message']}")
            job = self.http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled", "paused") and not page["has_more"]:
                return job
            time.sleep(1.0)

    def reuse(self, key: str) -> dict | None:
        job_id = self.state.get(key)
        if not job_id:
            return None
        job = self.http.get(f"/v1/jobs/{job_id}")
        if job.status_code == 200 and job.json()["status"] == "succeeded":
            say(f"      reusing {key} {job_id} (already succeeded)")
            return job.json()
        return None

    def upload(self, rows: list[dict], purpose: str, name: str) -> str:
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        r = self.http.post("/v1/files", files={"file": (name, content)}, data={"purpose": purpose})
        r.raise_for_status()
        return r.json()["id"]

    def generate(self) -> list[dict]:
        job = self.reuse("generation_job")
        if job is None:
            # The shipped seed tasks written in English: in-context Chinese pulls a 135M teacher into Chinese.
            seeds = [s for s in load_seed_tasks() if not contains_cjk(json.dumps(s, ensure_ascii=False))]
            seed_file = self.upload(seeds, "seed_tasks", "demo-seeds.jsonl")
            say(f"      {len(seeds)} English seed tasks of lorafleet's own seed file; Self-Instruct's 4 steps "
                "through /v1/completions")
            body = {"method": "self_instruct", "seed_file": seed_file, "num_instructions": 8,
                    "request_batch_size": 4, "max_rounds": 2, "max_instances_per_task": 2,
                    "teacher": {"base_url": f"{self.url}/v1", "model": BASE, "api": "completions",
                                "api_key": self.state["api_key"], "max_tokens": 256, "max_concurrency": 4}}
            r = self.http.post("/v1/generation/jobs", json=body)
            r.raise_for_status()
            self.state["generation_job"] = r.json()["id"]
            self.save()
            job = self.follow(r.json()["id"], lambda ev: ev["type"] == "metrics" or "Job" in ev["message"])
        result = job.get("result") or {}
        if job["status"] != "succeeded" or not result.get("training_file"):
            say(f"      generation ended {job['status']}; continuing with the demo file only")
            return []
        content = self.http.get(f"/v1/files/{result['training_file']}/content").text
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
        say(f"      kept {len(rows)} generated examples (a 135M teacher writes few usable tasks; the "
            f"machinery is the point)")
        return rows

    def fine_tune(self, generated: list[dict], train_rows: list[dict]) -> str:
        job = self.reuse("fine_tuning_job")
        if job is None:
            file_id = self.upload(generated + train_rows, "fine-tune", "demo-train.jsonl")
            hp = {"num_epochs": 2, "batch_size": 16, "micro_batch_size": 4, "cutoff_len": 192,
                  "learning_rate": 1e-3, "warmup_steps": 2, "lora_target_modules": "all-linear", "n_checkpoints": 2}
            r = self.http.post("/v1/fine_tuning/jobs", json={"model": BASE, "training_file": file_id,
                                                              "suffix": "demo", "hyperparameters": hp})
            r.raise_for_status()
            self.state["fine_tuning_job"] = r.json()["id"]
            self.save()
            job = self.follow(r.json()["id"])
            if job["status"] != "succeeded":
                raise SystemExit(f"fine-tuning {job['status']}: {job.get('error')}")
        return self.http.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["fine_tuned_model"]

    def evaluate(self, adapter: str, held_out: list[dict]) -> dict:
        job = self.reuse("eval_job")
        if job is None:
            file_id = self.upload(held_out, "evals", "demo-eval.jsonl")
            r = self.http.post("/v1/evals/jobs", json={"eval_file": file_id, "models": [BASE, adapter],
                                                        "metrics": ["rouge_l", "exact_match", "reference_loss"],
                                                        "sampling": {"max_new_tokens": 48},
                                                        "precision": "auto"})
            r.raise_for_status()
            self.state["eval_job"] = r.json()["id"]
            self.save()
            job = self.follow(r.json()["id"], lambda ev: "Job" in ev["message"])
        return self.http.get(f"/v1/evals/jobs/{job['id']}").json()


def print_scores(job: dict) -> None:
    """The eval job's score table: one row per model, one column per metric."""
    models = job.get("scores") or []
    if not models:
        say(f"      no scores: {job.get('status')} {job.get('error')}")
        return
    metrics = list(models[0].get("scores", {}))
    say("      " + "model".ljust(58) + "".join(m.rjust(16) for m in metrics))
    for m in models:
        cells = [m["scores"].get(k) for k in metrics]
        say("      " + m["name"][:57].ljust(58) + "".join(
            (f"{v:.4f}" if isinstance(v, (int, float)) else "-").rjust(16) for v in cells))
    examples = (job.get("report") or {}).get("examples") or []
    if examples:
        ex = examples[0]
        say(f"\n      side by side, row 1: {ex['instruction'][:70]!r}")
        for name, out in (ex.get("outputs") or {}).items():
            say(f"        {name[:40]:40} -> {str(out.get('text', ''))[:70]!r}")


def run_demo(args) -> int:
    from models.settings import get_settings

    data_dir = Path(args.data_dir) if args.data_dir else get_settings().data_dir / "demo"
    demo = Demo(data_dir.resolve(), args.port)
    rows = json.loads(DEMO_DATA.read_text())
    train_rows, held_out = rows[:-HELD_OUT], rows[-HELD_OUT:]
    t0 = time.time()
    try:
        say("[1/4] starting lorafleet (embedded: SQLite + SQLAlchemy broker, one gpu and one io worker)")
        demo.start()
        say("[2/4] self-instruct generation with lorafleet's own endpoint as the teacher")
        generated = demo.generate()
        say(f"[3/4] LoRA fine-tuning of {BASE} on {len(generated)} generated + {len(train_rows)} demo examples")
        adapter = demo.fine_tune(generated, train_rows)
        say(f"      adapter {adapter}")
        say(f"[4/4] eval: base vs adapter on {len(held_out)} held-out rows")
        print_scores(demo.evaluate(adapter, held_out))
        say(f"\ndone in {time.time() - t0:.0f} s. Look around (key in {data_dir / 'demo_state.json'}):")
        for key in ("generation_job", "fine_tuning_job", "eval_job"):
            say(f"  {key:16} {demo.url}/v1/jobs/{demo.state.get(key)}  (events: .../events)")
        say(f"  adapters         {demo.url}/v1/adapters   models: {demo.url}/v1/models")
        say(f"  dashboard        {demo.url}/   (sign in with the api_key in {demo.state_file})")
        say(f"  CLI              lorafleet login --base-url {demo.url}   (same key), then\n"
            f"                   lorafleet jobs follow {demo.state.get('fine_tuning_job')}   "
            "(also: lorafleet jobs list, lorafleet chat -m ...)")
        say("  (the instance stops with the demo; `lorafleet up --data-dir "
            f"{data_dir}` brings it back with everything in it)")
    finally:
        demo.stop()
    return 0
