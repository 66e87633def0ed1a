"""Words for :mod:`roo_daemon.engine.shell`: quotes, escapes, line
continuations, expansions and the substitutions inside them, and here-doc
bodies.

The grammar above words (lists, pipelines, compound commands) is in
``shell.py``; this base class reads everything a word can contain and
reports the commands nested in it through ``list_``, which the parser defines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from roo_daemon.engine.shell_braces import brace_expand
from roo_daemon.engine.shell_types import Script, ShellSyntaxError, Word

_META = frozenset(" \t\n;&|()<>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_POSIX_OPS = ["&&", "||", ";;", ">>", ">&", ">|", "<<-", "<<", "<>", "<&", "(", ")", ";", "&", "|", "<", ">"]
_BASH_OPS = sorted([*_POSIX_OPS, ";;&", ";&", "|&", "&>>", "&>", "<<<"], key=len, reverse=True)
_TOKEN = re.compile(r"[^\s;&|()<>]+")


@dataclass
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    quoted: bool


@dataclass
class _Chars:
    """A word being read: its characters with whether each was quoted."""

    chars: list[tuple[str, bool]] = field(default_factory=list)
    dynamic: bool = False
    glob: bool = False

    def add(self, text: str, quoted: bool) -> None:
        self.chars.extend((c, quoted) for c in text)


class WordReader:
    def __init__(self, source: str, script: Script, nested: bool, posix: bool) -> None:
        self.src, self.i, self.n = source, 0, len(source)
        self.script, self.nested = script, nested
        self.posix = posix  # read as POSIX sh (dash) does, not as bash
        self.heredocs: list[_Heredoc] = []
        self.cooked = 0  # line continuations before this index are already removed

    def sub_parser(self, source: str) -> WordReader:
        return type(self)(source, self.script, nested=True, posix=self.posix)

    def list_(self, end: str | None) -> None:  # the parser's grammar
        raise NotImplementedError

    def program(self) -> None:
        raise NotImplementedError

    def syntax(self, message: str) -> Exception:
        return ShellSyntaxError(message)

    # --- tokens -------------------------------------------------------------
    def cook(self) -> None:
        """Remove the line continuations (backslash-newline) ahead of the
        cursor, as the shell does while it reads input, so that every
        lookahead (``$$``, ``&&``, ``if``, ``NAME=``) sees what the shell sees.
        It stops at a quote, a ``#`` or a newline: inside single quotes, a
        comment or a quoted here-doc body a backslash-newline stays; the
        cursor's own loops call this again once past them."""
        j = max(self.i, self.cooked)
        while j < self.n:
            c = self.src[j]
            if c == "\\":
                if self.src.startswith("\n", j + 1):
                    self.src = self.src[:j] + self.src[j + 2 :]
                    self.n -= 2
                    continue
                j += 2
            elif c in "'#\n":
                break
            else:
                j += 1
        self.cooked = j

    def blanks(self, newlines: bool = False) -> None:
        """Skip blanks, line continuations and comments (and newlines, reading
        any here-doc bodies they start, if ``newlines``)."""
        while self.i < self.n:
            self.cook()
            c = self.src[self.i]
            if c in " \t":
                self.i += 1
            elif self.src.startswith("\\\n", self.i):
                self.i += 2
            elif c == "#":
                end = self.src.find("\n", self.i)
                self.i = self.n if end == -1 else end
            elif c == "\n" and newlines:
                self.i += 1
                self.heredoc_bodies()
            else:
                return

    def operator(self) -> str | None:
        """The operator at the cursor (not consumed); ``<(``/``>(`` start words."""
        self.cook()
        if self.src.startswith(("<(", ">("), self.i) and not self.posix:
            return None
        for op in _POSIX_OPS if self.posix else _BASH_OPS:
            if self.src.startswith(op, self.i):
                return op
        return None

    def peek_token(self) -> str | None:
        self.cook()
        m = _TOKEN.match(self.src, self.i)
        return m.group(0) if m else None

    def bash_only(self, op: str) -> None:
        if op in ("|&", "&>", "&>>", ";&", ";;&", "<<<"):
            self.script.doubt(f"'{op}' is bash syntax that /bin/sh reads differently")

    # --- words --------------------------------------------------------------
    def read_word(self, assignment: bool = False) -> Word | None:
        """Read one word at the cursor; None if a metacharacter is there."""
        self.cook()
        start = self.i
        word = _Chars()
        while self.i < self.n:
            self.cook()
            c = self.src[self.i]
            if c in "<>" and self.src.startswith("(", self.i + 1) and not self.posix:
                self.process_substitution()
                word.dynamic = True
            elif c in _META:
                break
            elif c == "\\":
                if self.src.startswith("\n", self.i + 1):
                    self.i += 2  # a line continuation: removed
                    continue
                word.add(self.src[self.i + 1 : self.i + 2] or "\\", True)
                self.i += 2
            elif c == "'":
                end = self.src.find("'", self.i + 1)
                if end == -1:
                    raise self.syntax("unterminated single quote")
                word.add(self.src[self.i + 1 : end], True)
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self.double_quoted(word)
            elif c == "`":
                self.backtick(in_dq=False)
                word.dynamic = True
            elif c == "$":
                self.dollar(word, in_dq=False)
            else:
                word.glob |= c in "*?[" and not assignment
                word.add(c, False)
                self.i += 1
        if self.i == start:
            return None
        raw = self.src[start : self.i]
        if word.dynamic:
            return Word(raw, None, glob=word.glob)
        if not assignment and not self.posix:
            expanded = brace_expand(word.chars)
            if expanded is not None:
                return Word(raw, expanded, glob=word.glob, brace=True)
        return Word(raw, ["".join(c for c, _ in word.chars)], glob=word.glob)

    def double_quoted(self, word: _Chars) -> None:
        """The inside of ``"..."`` (the opening quote already read)."""
        while True:
            self.cook()
            if self.i >= self.n:
                raise self.syntax("unterminated double quote")
            c = self.src[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.src[self.i + 1 : self.i + 2] in ('"', "\\", "$", "`", "\n"):
                if self.src[self.i + 1] != "\n":
                    word.add(self.src[self.i + 1], True)
                self.i += 2
            elif c == "`":
                self.backtick(in_dq=True)
                word.dynamic = True
            elif c == "$":
                self.dollar(word, in_dq=True)
            else:
                word.add(c, True)
                self.i += 1

    def dollar(self, word: _Chars, in_dq: bool) -> None:
        """An expansion at ``$``: anything but a lone ``$`` makes the word dynamic."""
        self.cook()
        src, i = self.src, self.i
        nxt = src[i + 1 : i + 2]
        if src.startswith("$((", i) and self.is_arithmetic(i + 3):
            self.i = self.arithmetic(i + 3, "))")
        elif nxt == "(":
            self.i += 2
            self.substitution()
        elif nxt == "{":
            self.parameter(in_dq)
        elif self.posix and nxt in "'\"[":
            word.add("$", in_dq)
            self.i += 1
            return
        elif nxt == "[":
            self.script.doubt("'$[...]' is bash syntax that /bin/sh reads differently")
            self.i = self.arithmetic(i + 2, "]")
        elif nxt in ("'", '"') and not in_dq:
            self.script.doubt(f"'${nxt}...{nxt}' quoting is bash syntax that /bin/sh reads differently")
            self.i += 1
            if nxt == '"':
                self.i += 1
                self.double_quoted(word)
            else:
                self.ansi_c()
        elif m := _NAME.match(src, i + 1):
            self.i = m.end()
        else:
            word.add("$", in_dq)
            self.i += 1
            return
        word.dynamic = True

    def ansi_c(self) -> None:
        j = self.i + 1
        while j < self.n and self.src[j] != "'":
            j += 2 if self.src[j] == "\\" else 1
        if j >= self.n:
            raise self.syntax("unterminated $'...' quote")
        self.i = j + 1

    def substitution(self) -> None:
        """``$( list )`` with the cursor after ``$(``: its commands are nested."""
        self.script.substitutions = True
        self.nested_list()

    def process_substitution(self) -> None:
        self.script.process_substitutions = True
        self.i += 2
        self.nested_list()

    def nested_list(self) -> None:
        outer, self.nested = self.nested, True
        try:
            self.list_(")")
        finally:
            self.nested = outer

    def backtick(self, in_dq: bool) -> None:
        """`` `...` ``: backslash escapes are undone, then the text is parsed."""
        self.script.substitutions = True
        escapes = '$`\\"' if in_dq else "$`\\"
        out: list[str] = []
        j = self.i + 1
        while True:
            if j >= self.n:
                raise self.syntax("unterminated backquote")
            c = self.src[j]
            if c == "`":
                break
            if c == "\\" and self.src[j + 1 : j + 2] and self.src[j + 1] in escapes:
                out.append(self.src[j + 1])
                j += 2
                continue
            out.append(c)
            j += 1
        self.i = j + 1
        self.sub_parser("".join(out)).program()

    def parameter(self, in_dq: bool) -> None:
        """``${...}``: its body may hold quotes and further expansions."""
        body = _Chars()
        j0 = self.i
        self.i += 2
        depth = 1
        while True:
            self.cook()
            if self.i >= self.n:
                raise self.syntax("unterminated ${...}")
            c = self.src[self.i]
            if c == "}":
                depth -= 1
                self.i += 1
                if depth == 0:
                    break
            elif c == "{":
                depth += 1
                self.i += 1
            elif c == "\\":
                self.i += 2
            elif c == "'" and in_dq and self.posix:
                self.i += 1
            elif c == "'":
                if in_dq:
                    self.script.doubt('a quote inside "${...}" is read differently by bash and /bin/sh')
                end = self.src.find("'", self.i + 1)
                if end == -1:
                    raise self.syntax("unterminated single quote")
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self.double_quoted(body)
            elif c == "`":
                self.backtick(in_dq)
            elif c == "$":
                self.dollar(body, in_dq)
            else:
                self.i += 1
        text = self.src[j0 : self.i]
        if "[" in text or re.match(r"\$\{[^}:]*:[^-=+?]*[A-Za-z_$]", text):
            self.script.doubt("an array subscript or offset is arithmetic that may run code in variables")

    def is_arithmetic(self, j: int) -> bool:
        """After ``$((`` or ``((``: does a ``))`` close it (bash's test), or is
        it a subshell inside a command substitution / a subshell?"""
        depth = 0
        while j < self.n:
            c = self.src[j]
            if c in "'\"`":
                end = self.src.find(c, j + 1)
                if end == -1:
                    return False
                j = end
            elif c == "\\":
                j += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    return self.src.startswith("))", j)
                depth -= 1
            j += 1
        return False

    def arithmetic(self, j: int, closer: str) -> int:
        """Read an arithmetic expression from ``j`` to ``closer``; returns the
        index after it. Names in it are variables whose *values* bash also
        evaluates (``a[$(cmd)]`` in a value runs ``cmd``), so those doubt."""
        start, self.i, depth = j, j, 0
        scratch = _Chars()
        while True:
            self.cook()
            if self.i >= self.n:
                raise self.syntax("unterminated arithmetic expression")
            c = self.src[self.i]
            if depth == 0 and self.src.startswith(closer, self.i):
                break
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "$":
                self.dollar(scratch, in_dq=True)
                continue
            elif c == "`":
                self.backtick(in_dq=True)
                continue
            elif c == '"':
                self.i += 1
                self.double_quoted(scratch)
                continue
            self.i += 1
        if re.search(r"[A-Za-z_$`]", self.src[start : self.i]):
            self.script.doubt("arithmetic on variables can run code hidden in their values")
        return self.i + len(closer)

    # --- here-documents -----------------------------------------------------
    def pending_heredoc(self, raw: str, strip_tabs: bool) -> None:
        quoted = any(q in raw for q in "'\"\\")
        delimiter = re.sub(r"\\(.)|['\"]", lambda m: m.group(1) or "", raw)
        self.heredocs.append(_Heredoc(delimiter, strip_tabs, quoted))

    def heredoc_bodies(self) -> None:
        """Read the bodies of the here-docs started on the line just ended;
        an unquoted delimiter's body is expanded, so its substitutions run."""
        pending, self.heredocs = self.heredocs, []
        for doc in pending:
            start, found, logical, line_start = self.i, False, "", self.i
            while self.i < self.n:
                end = self.src.find("\n", self.i)
                end = self.n if end == -1 else end
                line = self.src[self.i : end]
                self.i = min(end + 1, self.n)
                if not doc.quoted and end < self.n and _continues(line):
                    logical += line[:-1]  # backslash-newline joins lines in an unquoted body
                    continue
                logical += line
                if (logical.lstrip("\t") if doc.strip_tabs else logical) == doc.delimiter:
                    found = True
                    body = self.src[start:line_start]
                    break
                logical, line_start = "", self.i
            if not found:
                body = self.src[start : self.i]
                self.script.doubt("a here-document has no end line")
            if not doc.quoted:
                self.sub_parser(body).heredoc_text()

    def heredoc_text(self) -> None:
        scratch = _Chars()
        while self.i < self.n:
            c = self.src[self.i]
            if c == "\\":
                self.i += 2
            elif c == "$":
                self.dollar(scratch, in_dq=True)
            elif c == "`":
                self.backtick(in_dq=False)
            else:
                self.i += 1

    def finish(self) -> None:
        if self.heredocs:
            self.script.doubt("a here-document has no body")


def _continues(line: str) -> bool:
    """Whether a line ends in an unescaped backslash (an odd run of them)."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1
