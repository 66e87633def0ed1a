"""The data model of :mod:`roo_daemon.engine.shell`: words, redirections,
simple commands and what a parse found (its API for the command policy)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NOT_FILE_REDIRECTS = frozenset({"<<", "<<-", "<<<"})
_WRAPPERS = frozenset({"exec", "command", "builtin"})  # run the command named next, as it is


@dataclass
class Word:
    raw: str  # as written
    values: list[str] | None  # after quote removal (and brace expansion); None if known only at run time
    glob: bool = False  # an unquoted * ? or [ (pathname expansion)
    brace: bool = False  # brace expansion applied


class ShellSyntaxError(Exception):
    """The line is not valid shell syntax (or not syntax this parser knows)."""


@dataclass
class Redirection:
    op: str  # ">", ">>", "<", "<<", "<<<", "&>", ">&", ...
    target: str  # the target word as written (a here-doc's delimiter)

    @property
    def to_file(self) -> bool:
        """Whether it opens a file: not ``2>&1``, ``>&-``, a here-doc or a here-string."""
        if self.op in NOT_FILE_REDIRECTS:
            return False
        return not (self.op in ("<&", ">&") and re.fullmatch(r"\d+-?|-", self.target))


@dataclass
class SimpleCommand:
    """One simple command: ``NAME=value ... word ... [redirections]``."""

    text: str = ""  # as written, redirections included (Roo matches prefixes on this)
    assignments: list[Word] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirections: list[Redirection] = field(default_factory=list)
    nested: bool = False  # inside $(...), `...`, <(...), >(...) or a here-doc
    posix_only: bool = False  # only POSIX sh (dash) reads the line as running this one

    @property
    def argv(self) -> list[str | None]:
        """The words after quote removal and brace expansion; ``None`` for a
        word whose value is only known at run time (``$x``, ``$(cmd)``, a glob)."""
        out: list[str | None] = []
        for word in self.words:
            out.extend(word.values if word.values is not None else [None])
        return out

    @property
    def unwrapped(self) -> list[str | None]:
        """``argv`` without leading ``exec``/``command``/``builtin`` (and
        ``command -p``, ``exec --``): the command they run, which a deny
        prefix must still meet (``exec rm -rf x`` is ``rm -rf x``)."""
        argv = self.argv
        while argv and argv[0] in _WRAPPERS:
            argv = argv[1:]
            while argv and argv[0] in ("-p", "--"):
                argv = argv[1:]
        return argv

    @property
    def normalized(self) -> str:
        """Assignments and words joined by single spaces, quotes removed where
        the value is static (so ``r'm'`` meets a ``rm`` prefix)."""
        parts = [w.raw for w in self.assignments]
        for word in self.words:
            parts.extend(word.values if word.values is not None else [word.raw])
        return " ".join(parts)


@dataclass
class Script:
    """What :func:`parse` found in a command line."""

    commands: list[SimpleCommand] = field(default_factory=list)
    background: bool = False  # a command runs with '&'
    substitutions: bool = False  # $(...) or backticks
    process_substitutions: bool = False  # <(...) or >(...)
    unsure: list[str] = field(default_factory=list)  # why the parse cannot vouch for what runs
    error: str | None = None  # the syntax error that stopped the parse, if any

    redirections: list[Redirection] = field(default_factory=list)  # all of them, compound commands' too

    def doubt(self, reason: str) -> None:
        if reason not in self.unsure:
            self.unsure.append(reason)
