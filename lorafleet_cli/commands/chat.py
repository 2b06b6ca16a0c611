"""``lorafleet chat``: talk to a base model or an adapter through ``/v1/chat/completions``, the answer
streamed as it is written. ``-m`` asks one question and exits; without it, an interactive session keeps
the conversation until an empty line, ``/exit`` or Ctrl-D (``/reset`` starts over)."""
from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.errors import FAILED, CliError


def stream_answer(cli: Cli, body: dict, echo: bool) -> tuple[str, str | None]:
    """The streamed answer's text (written out as it comes when ``echo``) and its finish reason."""
    parts: list[str] = []
    finish = None
    with cli.api.sse("POST", "/chat/completions", json={**body, "stream": True}) as events:
        for _, data in events:
            if data.strip() == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise CliError.from_response(502, chunk, data)
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                parts.append(text)
                if echo and text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
    if echo:
        sys.stdout.write("\n")
    return "".join(parts), finish


def answer(cli: Cli, body: dict, stream: bool, echo: bool) -> tuple[str, str | None]:
    if stream:
        return stream_answer(cli, body, echo)
    reply = cli.api.post("/chat/completions", body)
    choice = (reply.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    if echo:
        sys.stdout.write(text + "\n")
    return text, choice.get("finish_reason")


def chat(cli: Cli,
         message: Annotated[str | None, typer.Option("--message", "-m", help="ask this once and exit",
                                                     show_default=False)] = None,
         model: Annotated[str, typer.Option(help="a base model, an adapter (ft:...) or a checkpoint")] =
         "smollm2-135m-instruct",
         system: Annotated[str | None, typer.Option(help="a system message", show_default=False)] = None,
         temperature: Annotated[float | None, typer.Option(show_default=False)] = None,
         top_p: Annotated[float | None, typer.Option(show_default=False)] = None,
         max_tokens: Annotated[int | None, typer.Option(show_default=False)] = None,
         stream: Annotated[bool, typer.Option("--stream/--no-stream", help="print the answer as it is written")]
         = True) -> None:
    """Chat with a model (streamed). With -m: one question, one answer."""
    params: dict[str, Any] = {k: v for k, v in (("temperature", temperature), ("top_p", top_p),
                                                 ("max_tokens", max_tokens)) if v is not None}
    history = [{"role": "system", "content": system}] if system else []
    if message is not None:
        text, finish = answer(cli, {"model": model, "messages": [*history, {"role": "user", "content": message}],
                                    **params}, stream, echo=not cli.out.as_json)
        if cli.out.as_json:
            cli.out.json({"model": model, "content": text, "finish_reason": finish, "streamed": stream})
        return
    if cli.out.as_json:
        raise CliError("--json needs -m (one question)", 2, param="--json")
    cli.out.note(f"chatting with {model}; an empty line, /exit or Ctrl-D ends, /reset starts over")
    conversation = list(history)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            break
        if not line.strip() or line.strip() == "/exit":
            break
        if line.strip() == "/reset":
            conversation = list(history)
            continue
        conversation.append({"role": "user", "content": line})
        sys.stdout.write(f"{model}> ")
        try:
            text, _ = answer(cli, {"model": model, "messages": conversation, **params}, stream, echo=True)
        except CliError as error:
            if error.exit_code == FAILED:
                raise
            cli.out.error(error)
            conversation.pop()
            continue
        conversation.append({"role": "assistant", "content": text})


def register(app: typer.Typer) -> None:
    client_command(app, "chat")(chat)
