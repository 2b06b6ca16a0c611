"""The teacher of a job (a generation job's teacher, an eval job's judge) from its config and params.

A remote teacher gets its API key from the job's params, where the API stored it encrypted; a local
one (``TeacherConfig.local``) is the job owner's model loaded in this worker, or a model of an
engine the job already has loaded (the eval job's, when the judge is on the same base model).
"""
from __future__ import annotations

from contracts.configs import TeacherConfig
from models.crud.model_refs import resolve_model
from models.secrets import decrypt_secret
from worker.job_context import JobContext, JobFailed
from worker.ml.teachers.costs import configured_price
from worker.ml.teachers.interface import Teacher
from worker.ml.teachers.local import LocalTeacher
from worker.ml.teachers.remote import build_teacher
from worker.resources import resolve_base_model_dir


def job_secret(ctx: JobContext, field: str, param: str) -> str | None:
    """Decrypt ``ctx.params[field]`` (None when absent); an unreadable one fails the job naming ``param``."""
    token = ctx.params.get(field)
    if not token:
        return None
    try:
        return decrypt_secret(ctx.settings, token)
    except ValueError as exc:
        raise JobFailed("secret_unreadable", str(exc), f"{param}.api_key") from None


def local_teacher(ctx: JobContext, cfg: TeacherConfig, param: str, engine=None, continuation: bool = True
                  ) -> LocalTeacher:
    """The owner's model ``cfg.model`` in-process; ``engine`` is reused when it runs the same base model."""
    with ctx.session() as s:
        try:
            ref = resolve_model(session=s, name=cfg.model, owner_id=ctx.owner_id,
                                artifacts_dir=ctx.settings.artifacts_dir)
            model_dir = resolve_base_model_dir(s, ctx.settings, ref.base_model)
        except (LookupError, FileNotFoundError):
            raise JobFailed("model_not_found", f"the {param} model {cfg.model} no longer exists",
                            f"{param}.model") from None
    if engine is None or engine.base_model_dir != model_dir:
        from worker.ml.decoding.engine import InferenceEngine

        engine = InferenceEngine(model_dir, device=ctx.settings.device)
    return LocalTeacher(engine, ref.target, api=cfg.api, price=configured_price(cfg), continuation=continuation)


def make_teacher(ctx: JobContext, cfg: TeacherConfig, *, key_field: str, param: str, engine=None,
                 continuation: bool = True) -> tuple[Teacher, str]:
    """(teacher, where it runs) for a job's teacher config; ``continuation``: see ``teacher.chat_content``."""
    if cfg.local:
        return (local_teacher(ctx, cfg, param, engine, continuation),
                f"in this worker ({ctx.settings.device})")
    key = job_secret(ctx, key_field, param)
    return build_teacher(cfg, api_key=key, continuation=continuation), f"at {cfg.base_url or 'the OpenAI API'}"
