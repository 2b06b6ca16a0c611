"""A real OpenAI-compatible teacher over HTTP for generation and judge integration tests (uvicorn in a thread).

Adapted from tests/worker/ml/selfinstruct/openai_stub.py: it answers Alpaca one-call prompts
(``/v1/completions`` or ``/v1/chat/completions``) with well-formed, deterministic numbered task
lists -- plus one blacklisted task, one copy of a prompt example (a ROUGE near-duplicate) and one
broken block per answer, so the filters have something to reject. Judge prompts (``scoring.JUDGE_PROMPT``)
get a deterministic rating (``judge_rating``).

Every request is logged (prompt hash, whether it was answered, the Authorization header). ``delay_s``
slows each answer; ``hold_after=N`` answers N requests, then holds the next one until ``release()``
and never answers it (it stands for a request in flight when a worker is killed).
"""
from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.live_server import LiveServer
from worker.ml.evaluation.scoring import JUDGE_PROMPT
from worker.ml.selfinstruct.published_templates import ALPACA_PROMPT_TXT
from worker.ml.teachers.continuation import CHAT_CONTINUE_INSTRUCTION

VERBS = ["Describe", "Explain", "Summarize", "Compare", "List", "Classify", "Rewrite", "Evaluate", "Suggest",
         "Outline", "Identify", "Predict", "Estimate", "Design", "Critique", "Recommend", "Contrast", "Rank"]
NOUNS = ["volcano", "budget", "poem", "recipe", "garden", "contract", "river", "museum", "engine", "habit",
         "festival", "satellite", "orchestra", "glacier", "startup", "library", "vaccine", "bridge", "desert",
         "election", "harbor", "keyboard", "lantern", "meadow", "novel", "pharmacy", "quarry", "rainforest",
         "tournament", "umbrella", "vineyard", "workshop", "yacht", "zoo", "bakery", "canyon", "dialect"]
ADJ = ["ancient", "tiny", "noisy", "modern", "rural", "fragile", "famous", "hidden", "urban", "frozen", "bright",
       "coastal", "digital", "elegant", "humble", "massive", "nervous", "quiet", "rusty", "sunny"]
TAILS = ["for a curious teenager", "in three sentences", "using simple words", "as a short list",
         "with one example", "for a busy manager", "in a friendly tone", "from two points of view",
         "for a travel blog", "without technical terms", "as a haiku", "in under fifty words"]


def _rng(prompt: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big"))


def alpaca_answer(prompt: str) -> str:
    """A completion of an Alpaca prompt: items 4..11 as ``###`` blocks (the prompt ends at ``4. Instruction:``)."""
    if not prompt.startswith(ALPACA_PROMPT_TXT):
        raise ValueError("not an Alpaca prompt")
    rng = _rng(prompt)
    example = re.search(r"^1\. Instruction: (.*)$", prompt, flags=re.MULTILINE).group(1)
    blocks = []
    for k in range(4, 12):
        inst = (f"{rng.choice(VERBS)} the {rng.choice(ADJ)} {rng.choice(NOUNS)} beside a {rng.choice(ADJ)} "
                f"{rng.choice(NOUNS)} {rng.choice(TAILS)}.")
        if k == 6:
            inst = "Make a video about the cats next door."  # blacklisted ("video")
        if k == 7:
            inst = example  # a copy of an in-context example: ROUGE-L 1.0
        inp = "<noinput>" if k % 2 else f"sample input number {rng.randrange(1000)}"
        head = " " if k == 4 else f"{k}. Instruction: "
        blocks.append(f"{head}{inst}\n{k}. Input:\n{inp}\n{k}. Output:\nA short answer for task {k}.\n")
    blocks.append("12. Instruction: a broken block without its input and output\n")
    return "###\n".join(blocks)


def judge_rating(prediction: str) -> int:
    """The stub judge's deterministic 1-10 rating of an answer."""
    return 1 + len(prediction) % 10


def judge_answer(prompt: str) -> str:
    """A judge's reply to ``scoring.JUDGE_PROMPT``: a sentence, then ``Rating: [[n]]``."""
    prediction = prompt.rsplit("[Assistant's response]\n", 1)[1].removesuffix("\n")
    return f"The response is acceptable. Rating: [[{judge_rating(prediction)}]]"


@dataclass
class TeacherStub:
    delay_s: float = 0.0
    hold_after: int | None = None
    log: list[dict] = field(default_factory=list)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)

    def answered(self) -> list[str]:
        return [e["prompt_sha"] for e in self.log if e["answered"]]

    def answered_twice(self) -> dict[str, int]:
        return {k: n for k, n in Counter(self.answered()).items() if n > 1}

    def release(self) -> None:
        self._release.set()

    def handle(self, api: str, body: dict, auth: str | None) -> JSONResponse:
        content = body["prompt"] if api == "completions" else body["messages"][-1]["content"]
        prompt = content.removeprefix(CHAT_CONTINUE_INSTRUCTION + "\n\n")
        entry = {"prompt_sha": hashlib.sha256(prompt.encode()).hexdigest(), "auth": auth, "answered": False,
                 "api": api, "continuation": content != prompt}
        with self._lock:
            hold = self.hold_after is not None and len(self.answered()) >= self.hold_after and not self._release.is_set()
            self.log.append(entry)
        if hold:  # in flight when the worker dies: never answered
            self.holding.set()
            self._release.wait(120)
            return JSONResponse({"error": {"message": "dropped", "type": "stub", "code": "503"}}, status_code=503)
        time.sleep(self.delay_s)
        try:
            text = judge_answer(prompt) if prompt.startswith(JUDGE_PROMPT[:40]) else alpaca_answer(prompt)
        except ValueError as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "stub", "code": "400"}}, status_code=400)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if api == "chat":
            choice = {"index": 0, "finish_reason": "stop", "logprobs": None,
                      "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "finish_reason": "stop", "logprobs": None, "text": text}
        with self._lock:
            entry["answered"] = True
        return JSONResponse({"id": f"cmpl-{len(self.log)}", "created": 0, "model": body["model"],
                             "object": "chat.completion" if api == "chat" else "text_completion",
                             "choices": [choice], "usage": usage})


def start_teacher_stub(**kwargs) -> tuple[TeacherStub, callable]:
    stub = TeacherStub(**kwargs)
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _in_thread(stub.handle, "chat", await request.json(), request.headers.get("authorization"))

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _in_thread(stub.handle, "completions", await request.json(),
                                request.headers.get("authorization"))

    live = LiveServer(app, log_level="error", start_timeout=10)
    stub.base_url = f"{live.url}/v1"

    def stop() -> None:
        stub.release()
        live.stop()

    return stub, stop


async def _in_thread(fn, *args):
    import anyio

    return await anyio.to_thread.run_sync(lambda: fn(*args))
