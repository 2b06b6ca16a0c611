"""Checks shared by the job-creation routes: the model exists, the files exist, are owned and fit;
a teacher config's secret is encrypted before it reaches the job's params."""
from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import APIError
from contracts.configs import FinetuneHyperparameters, TeacherConfig
from contracts.model_refs import ModelNotFound, parse_model_name
from contracts.preference_records import is_preference_format, parse_preference_file
from contracts.records import ParseResult
from models.crud.files import get_owned_file
from models.crud.model_refs import TrainingStart, is_base_model, resolve_model, resolve_training_start
from models.file import File
from models.secrets import encrypt_secret
from models.settings import Settings
from models.storage import ArtifactStore
from models.user import User


def require_base_model(session: Session, name: str, param: str = "model") -> str:
    if not is_base_model(session=session, name=name):
        raise APIError(404, "model_not_found", f"The base model '{name}' does not exist", param)
    return name


def require_file(session: Session, user: User, file_id: str | None, param: str,
                 purposes: tuple[str, ...]) -> File | None:
    if file_id is None:
        return None
    f = get_owned_file(session=session, file_id=file_id, owner_id=user.id)
    if f is None:
        raise APIError(404, "file_not_found", f"No file found with id '{file_id}'", param)
    if f.purpose not in purposes:
        raise APIError(400, "invalid_file_purpose", f"file {file_id} has purpose '{f.purpose}'; "
                       f"expected one of {list(purposes)}", param)
    return f


def resolve_model_ref(session: Session, user: User, name: str, param: str = "model") -> dict:
    """A model name as users write it -> ``contracts.model_refs.ModelRef`` fields as a dict (name, kind,
    base_model, adapter_path, prompt_template); the caller's own adapters only, else 404 naming ``param``."""
    try:
        return resolve_model(session=session, name=name, owner_id=user.id).model_dump()
    except ModelNotFound as exc:
        raise APIError(404, "model_not_found", exc.message, param) from None


def teacher_params(session: Session, user: User, settings: Settings, teacher: TeacherConfig, param: str) -> dict:
    """Job params for a teacher config (a generation job's ``teacher``, an eval job's ``judge``): its API key
    encrypted as ``{param}_api_key_encrypted`` (the dumped config never holds it). A local teacher must be
    a model the caller can use: 404 naming ``{param}.model`` otherwise."""
    if teacher.local:
        resolve_model_ref(session, user, teacher.model, f"{param}.model")
    if teacher.api_key is not None and teacher.api_key.get_secret_value():
        return {f"{param}_api_key_encrypted": encrypt_secret(settings, teacher.api_key.get_secret_value())}
    return {}


LORA_SHAPE = ("lora_r", "lora_alpha", "lora_target_modules")


def require_training_start(session: Session, user: User, name: str, param: str = "model") -> TrainingStart:
    """A fine-tuning job's ``model``: a base model, or one of the caller's adapters (name or id) or
    ``<adapter>:ckpt-step-N`` to continue from. Unknown or someone else's: 404 naming ``param``."""
    step = parse_model_name(name).checkpoint
    if step is not None and not step.isdigit():
        raise APIError(400, "invalid_model", f"'{name}': a checkpoint is named <adapter>:ckpt-step-<N> with N a "
                       f"step number", param)
    try:
        return resolve_training_start(session=session, name=name, owner_id=user.id)
    except ModelNotFound as exc:
        raise APIError(404, "model_not_found", exc.message, param) from None


def refuse_host_paths(hp: FinetuneHyperparameters, param: str) -> None:
    """``init_adapter`` is a folder on the worker's host, set by the worker only: over HTTP it is a 400."""
    if hp.init_adapter is not None:  # null, as a job's own hyperparameters echo it, is fine
        raise APIError(400, "invalid_value", "init_adapter is not accepted over HTTP: to start from one of your "
                       "adapters or checkpoints, name it as model (<adapter> or <adapter>:ckpt-step-N)",
                       f"{param}.init_adapter")


def continue_hyperparameters(hp: FinetuneHyperparameters, start: TrainingStart, param: str) -> FinetuneHyperparameters:
    """Continuing from an adapter keeps its LoRA shape and prompt template (the weights only fit that shape,
    and the adapter learnt that prompt); a different shape asked for is a 400 naming the field."""
    refuse_host_paths(hp, param)
    if start.ref.kind == "base":
        return hp
    update = {}
    for key in (*LORA_SHAPE, "prompt_template"):
        if start.hyperparameters.get(key) is None:
            continue
        if key in hp.model_fields_set and key in LORA_SHAPE and getattr(hp, key) != start.hyperparameters[key]:
            raise APIError(400, "invalid_value", f"{key}={getattr(hp, key)!r} differs from the adapter being "
                           f"continued ({start.hyperparameters[key]!r}); leave it out to keep the adapter's",
                           f"{param}.{key}")
        if key not in hp.model_fields_set:
            update[key] = start.hyperparameters[key]
    return hp.model_copy(update=update)


def line_errors(parsed: ParseResult, what: str, param: str) -> APIError:
    """A 400 naming every bad line of a data file (as an upload's errors do) and the parameter."""
    summary = "; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in parsed.errors[:5])
    more = f" (and {len(parsed.errors) - 5} more)" if len(parsed.errors) > 5 else ""
    code = parsed.errors[0].code if len(parsed.errors) == 1 else "invalid_file"
    return APIError(400, code, f"Invalid {what}: {summary}{more}", param, lines=[e.as_dict() for e in parsed.errors])


def require_method_file(session: Session, user: User, store: ArtifactStore, settings: Settings, file_id: str,
                        method: str, param: str) -> None:
    """A DPO job needs a file of preference pairs (an SFT file is answered with its lines' errors as pairs);
    a supervised job needs SFT examples."""
    f = get_owned_file(session=session, file_id=file_id, owner_id=user.id)
    preference = f is not None and is_preference_format((f.info or {}).get("format"))
    if method == "dpo" and not preference and f is not None:
        parsed = parse_preference_file(store.path(f.storage_path).read_bytes(), settings.max_line_bytes)
        if parsed.errors:
            raise line_errors(parsed, "preference (DPO) file", param)
    if method == "supervised" and preference:
        raise APIError(400, "invalid_file", f"file {file_id} holds preference pairs (chosen / rejected): train it "
                       "with method.type 'dpo'", param)
