"""The ``judge`` metric of an eval job: a teacher rates answers, every reply kept in a ledger.

``LedgeredJudge(prompts) -> replies`` sends only prompts it has no reply for: replies are appended
to ``judgements.jsonl`` in the job directory as they arrive (keyed by a hash of judge model and
prompt), so a restarted or resumed job never pays for a judgement twice. The prompt is sent as is
(a chat model gets it as its user message, with no "continue the text" framing); greedy decoding
and 512 new tokens unless the judge config says otherwise.
"""
from __future__ import annotations

import hashlib

from contracts.configs import TeacherConfig
from worker.handlers.line_ledger import ResultLedger
from worker.handlers.teachers import make_teacher
from worker.job_context import JobContext, JobFailed
from worker.ml.teachers.interface import DecodingParams, TeacherConfigError, TeacherRequest, TeacherResponse

DEFAULT_JUDGE_MAX_TOKENS = 512


class LedgeredJudge:
    def __init__(self, ctx: JobContext, cfg: TeacherConfig, engine=None) -> None:
        self.model = cfg.model
        self.teacher, self.where = make_teacher(ctx, cfg, key_field="judge_api_key_encrypted", param="judge",
                                                engine=engine, continuation=False)
        self.params = DecodingParams(max_tokens=cfg.max_tokens or DEFAULT_JUDGE_MAX_TOKENS,
                                     temperature=cfg.temperature or 0.0,
                                     top_p=cfg.top_p if cfg.top_p is not None else 1.0)
        self.replies: dict[str, str] = {}
        self.ledger = ResultLedger(ctx.work_dir / "judgements.jsonl", "request_id",
                                   on_load=lambda line: self.replies.__setitem__(line["request_id"], line["text"]))

    def request_id(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.model}\n{self.params.as_dict()}\n{prompt}".encode()).hexdigest()[:32]

    def __call__(self, prompts: list[str]) -> list[str]:
        ids = [self.request_id(p) for p in prompts]
        todo = {rid: TeacherRequest(rid, p, self.params) for rid, p in zip(ids, prompts) if rid not in self.replies}
        try:
            self.teacher.complete(list(todo.values()), on_response=self._record)
        except TeacherConfigError as exc:
            raise JobFailed("judge_error", f"the judge refused the job: {exc}", "judge") from None
        return [self.replies.get(rid, "") for rid in ids]

    def close(self) -> None:
        self.ledger.close()

    def _record(self, resp: TeacherResponse) -> None:
        """Each reply is kept as it arrives (an error answers with no rating, and is not retried)."""
        self.replies[resp.request_id] = resp.text if resp.finish_reason != "error" else ""
        self.ledger.write({"request_id": resp.request_id, "text": self.replies[resp.request_id],
                           "finish_reason": resp.finish_reason, "error": resp.error,
                           "prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
                           "cost_usd": resp.cost_usd})
        self.ledger.sync()  # a judgement is slow and may cost money: durable before the next one
