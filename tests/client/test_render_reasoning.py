"""The CLI transcript shows a model's streamed reasoning (``message.reasoning``)
dim, after a ``thinking:`` label, and its answer on a line of its own."""

from __future__ import annotations

import io

from roo_daemon.client.render import Transcript


def feed(t: Transcript, *events: tuple[str, str]) -> None:
    for name, text in events:
        t.event({"event": name, "task_id": "tsk_1", "data": {"text": text}})


def test_reasoning_is_shown_before_the_answer_on_its_own_line() -> None:
    out = io.StringIO()
    t = Transcript(out, color=False)
    feed(
        t,
        ("message.reasoning", "Let me "),
        ("message.reasoning", "think."),
        ("message.delta", "The answer."),
        ("message", "The answer."),
        ("message.reasoning", "Again."),
        ("message", "Second."),
    )
    assert out.getvalue() == "thinking: Let me think.\nThe answer.\nthinking: Again.\nSecond.\n"


def test_reasoning_is_dim_on_a_terminal() -> None:
    out = io.StringIO()
    t = Transcript(out, color=True)
    feed(t, ("message.reasoning", "Hmm."))
    assert out.getvalue() == t.style.dim("thinking: Hmm.")
