"""The id of the tool call being executed, set by the tool registry around
each call, so events a tool emits on its own (``tool.output``) can name the
call they belong to without every tool taking it as an argument."""

from contextvars import ContextVar

current_call_id: ContextVar[str | None] = ContextVar("current_call_id", default=None)
