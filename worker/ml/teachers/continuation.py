"""How a completion-style request is put to any teacher, remote or local.

- Chat models get the completion prompt in one documented way: a **single user message**,
  ``CHAT_CONTINUE_INSTRUCTION + "\\n\\n" + prompt``, asking the model to continue the text where it
  stops and to write only the continuation. If the reply starts by echoing the prompt's last line
  (e.g. ``"9."`` or ``"4. Instruction:"``, with any number: chat models like to restart lists at
  ``"1."``) that echo is removed, leading blank lines are dropped and one space is put in front, so
  the reply parses like a completion (and a leading blank line cannot trip the ``"\\n\\n"`` stop).
  Prompts that are already a request (a judge's) are sent as they are (``continuation=False``).
- Stop sequences are applied client-side too (``apply_stops``), so an answer never runs past one.
- Sampled requests carry a seed derived from the request's ledger id (``request_seed``), so a
  teacher that honours seeds answers one request reproducibly.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

CHAT_CONTINUE_INSTRUCTION = (
    "Continue the text below exactly where it stops, keeping its format and numbering. "
    "Write only the continuation: do not repeat the text and add no commentary."
)


def chat_content(prompt: str, continuation: bool) -> str:
    """The one user message a chat model gets for ``prompt``: with ``continuation`` (completion-style
    prompts of the self-instruct pipelines) prefixed by ``CHAT_CONTINUE_INSTRUCTION``; as is otherwise
    (prompts that are already a request, e.g. a judge's)."""
    return f"{CHAT_CONTINUE_INSTRUCTION}\n\n{prompt}" if continuation else prompt


def chat_reply(prompt: str, reply: str, continuation: bool) -> str:
    return strip_echoed_tail(prompt, reply) if continuation else reply


def strip_echoed_tail(prompt: str, reply: str) -> str:
    """Make a chat reply read like a completion: drop an echo of the prompt's last line
    (``"9."``, ``"4. Instruction:"``) and leading blank lines, and start with one space."""
    tail = prompt.rstrip().rsplit("\n", 1)[-1].strip()
    lead = reply.lstrip()
    if tail:  # the echo may restart the numbering ("1." for "9."): numbers match any number
        echo = re.match(r"\d+".join(re.escape(part) for part in re.split(r"\d+", tail)), lead)
        if echo:
            lead = lead[echo.end():].lstrip()
    return " " + lead if lead else ""


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop string; say whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def unique_stops(stops: Sequence[str]) -> list[str]:
    """The non-empty stop strings, first occurrence kept, in order."""
    return list(dict.fromkeys(s for s in stops if s))


def request_seed(request_id: str) -> int:
    """A sampling seed that depends on the request only (ledger ids are hex digests), so a teacher that
    honours seeds answers one request the same way every time."""
    try:
        return int(request_id[:15], 16)
    except ValueError:
        return sum(ord(c) * 31 ** i for i, c in enumerate(request_id[:32])) % (1 << 60)
