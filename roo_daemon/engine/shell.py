"""A parser for the command lines the agent asks to run, for the command
policy (:mod:`roo_daemon.engine.approval`).

Splitting a line at ``;`` and ``&&`` with regexes (as Roo does) is what let a
quoted newline hide ``touch X`` from an allowlist of ``echo``. This module reads
the line the way a shell does instead: quotes, escapes, line continuations,
comments, ``$(...)``, backticks, ``<(...)``/``>(...)``, ``${...}``,
arithmetic, subshells, groups, ``if``/``while``/``for``/``case``, here-docs,
and every operator, and returns each simple command it would run (those inside
substitutions and here-doc bodies included) with its words.

It does not evaluate anything. Where the parse cannot vouch for what runs, it
says so in :attr:`Script.unsure` and the policy asks: a syntax error, a command
name computed at run time (``$x``, a glob), builtins that run text as code
(``eval``, ``source``, ``trap``, ...), arithmetic on variables (bash evaluates
``a[$(cmd)]`` found in their values), assignments to variables the shell runs
as code (``PS4``, ``PATH``), and the syntax that bash and a POSIX ``/bin/sh`` (dash) read differently (``$'...'``,
``[[ ]]``, ``(( ))``, ``|&``, ``&>``, brace expansion, ...): commands run under
``/bin/sh``, which may be either. No syntax makes this module report *fewer*
commands than bash would run: that is what tests/engine/test_shell_vs_bash.py
checks against bash itself on generated command lines.
"""

from __future__ import annotations

import re

from roo_daemon.engine.shell_types import (
    Redirection,
    Script,
    ShellSyntaxError,
    SimpleCommand,
    Word,
)
from roo_daemon.engine.shell_words import WordReader

__all__ = [
    "Redirection",
    "Script",
    "ShellSyntaxError",
    "SimpleCommand",
    "Word",
    "parse",
    "parse_as",
]

# Builtins that run text as shell code, or change what a later command name
# means (``hash -p``, ``alias`` in sh, ``enable -f``).
EVALUATORS = frozenset("eval source . trap alias let fc enable hash mapfile readarray complete bind".split())
# Builtins that evaluate an array subscript (arithmetic, which runs ``$(...)``
# found in a variable's value) when an argument names one.
_SUBSCRIPTS = frozenset("declare typeset local export readonly unset read".split())
# Variables the shell itself expands as code later (PS4 under ``set -x``, ...)
# or that choose what a command name runs.
CODE_VARIABLES = frozenset("PS0 PS1 PS2 PS4 PROMPT_COMMAND BASH_ENV ENV PATH SHELLOPTS BASHOPTS".split())
_CLOSERS = {"if": "fi", "while": "done", "until": "done", "for": "done", "select": "done", "{": "}", "case": "esac"}
_POSIX_KEYWORDS = set("if then elif else fi while until for do done case esac { } !".split())
_KEYWORDS = _POSIX_KEYWORDS | {"select", "time", "function", "coproc"}
_IO_NUMBER = re.compile(r"(\d+|\{[A-Za-z_][A-Za-z0-9_]*\})(?=[<>])")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_FD_NUMBER = re.compile(r"\d+(?=[<>])")
_COPROC_NAME = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*(?=[{(])")
_REDIRECTS = frozenset({"<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<", "<<-", "<<<"})


def parse(source: str) -> Script:
    """Parse a command line; never raises. It is read twice, as bash and as
    POSIX sh (``/bin/sh`` may be either), and the commands of both readings are
    reported. A syntax error is recorded in :attr:`Script.error` and
    :attr:`Script.unsure`, with the commands found before it kept: the shell
    runs the complete lines before a bad one."""
    script = parse_as(source, posix=False)
    posix = parse_as(source, posix=True)
    texts = {(c.text, c.nested) for c in script.commands}
    seen = {(c.text, c.nested, tuple(c.argv)) for c in script.commands}
    extra = [c for c in posix.commands if (c.text, c.nested, tuple(c.argv)) not in seen]
    for command in extra:
        command.posix_only = True
    script.commands.extend(extra)
    if any((c.text, c.nested) not in texts for c in extra):  # not just words (sh has no brace expansion)
        script.doubt("bash and /bin/sh (POSIX sh) read this command line differently")
    script.background |= posix.background
    script.substitutions |= posix.substitutions
    script.process_substitutions |= posix.process_substitutions
    script.redirections.extend(r for r in posix.redirections if r not in script.redirections)
    return script


def parse_as(source: str, posix: bool) -> Script:
    """One reading: as bash, or as POSIX sh (dash)."""
    script = Script()
    try:
        _Parser(source, script, nested=False, posix=posix).program()
    except ShellSyntaxError as exc:
        script.error = str(exc)
        script.doubt(f"the shell syntax could not be parsed ({exc})")
    except RecursionError:
        script.error = "nested too deeply"
        script.doubt("the command is nested too deeply to check")
    script.commands = [c for c in script.commands if c.words or c.assignments or c.redirections]
    return script


class _Parser(WordReader):
    """Recursive descent over one source string. Commands go into ``script``
    in source order (a command before the ones nested in it)."""

    def program(self) -> None:
        self.list_(None)
        self.finish()

    def list_(self, end: str | None) -> None:
        """Commands up to EOF, or up to the ``)`` that ``end`` names."""
        stack: list[str] = []  # the closing words of the open compound commands
        need_sep = need_cmd = want_pattern = False
        while True:
            self.blanks()
            if self.i >= self.n:
                if end or stack or need_cmd:
                    raise ShellSyntaxError("unexpected end of the command line")
                return
            if self.src[self.i] == "\n":
                self.i += 1
                self.heredoc_bodies()
                need_sep = False
                continue
            word = self.peek_token()
            if want_pattern:  # after 'case WORD in' or ';;': a pattern, or 'esac'
                if word != "esac":
                    self.case_pattern()
                    want_pattern = False
                    continue
                want_pattern = False
            op = self.operator()
            if op == ")" and end == ")":
                if stack or need_cmd:
                    raise ShellSyntaxError("unexpected ')'")
                self.i += 1
                return
            if op in (";", "&", "&&", "||", "|", "|&"):
                if not need_sep:
                    raise ShellSyntaxError(f"unexpected '{op}'")
                self.script.background |= op == "&"
                self.bash_only(op)
                self.i += len(op)
                need_sep, need_cmd = False, op not in (";", "&")
                continue
            if op in (";;", ";&", ";;&"):
                if not stack or stack[-1] != "esac":
                    raise ShellSyntaxError(f"unexpected '{op}'")
                self.bash_only(op)
                self.i += len(op)
                need_sep, want_pattern = False, True
                continue
            if need_sep:
                raise ShellSyntaxError(f"unexpected {self.src[self.i : self.i + 10]!r}")
            if op is None and word in (_POSIX_KEYWORDS if self.posix else _KEYWORDS):
                need_sep = self.keyword(word, stack)
                need_cmd, want_pattern = word == "!", word == "case"
                continue
            need_cmd = False
            if op == "(":
                self.compound_paren()
                need_sep = True
            elif op is not None and op not in _REDIRECTS:
                raise ShellSyntaxError(f"unexpected '{op}'")
            elif word == "[[" and not self.posix:
                self.conditional()
                need_sep = True
            else:
                need_sep = self.simple_command()

    def keyword(self, word: str, stack: list[str]) -> bool:
        """Handle a reserved word at command position; True when what follows
        must be a separator (a closing word ends a compound command)."""
        self.i += len(word)
        if word in ("fi", "done", "esac", "}"):
            if not stack or stack[-1] != word:
                raise ShellSyntaxError(f"unexpected '{word}'")
            stack.pop()
            self.after_compound()
            return True
        if word in ("then", "elif", "else") and (not stack or stack[-1] != "fi"):
            raise ShellSyntaxError(f"unexpected '{word}'")
        if word == "do" and (not stack or stack[-1] != "done"):
            raise ShellSyntaxError("unexpected 'do'")
        if word in ("function", "coproc", "select"):
            self.script.doubt(f"'{word}' is bash syntax that /bin/sh reads differently")
        if word == "time":
            self.blanks()
            if self.peek_token() == "-p":
                self.i += 2
        elif word == "function":
            self.blanks()
            self.read_word()
            self.blanks()
            if self.src.startswith("(", self.i):
                self.function_parens()
        elif word == "coproc":
            name = _COPROC_NAME.match(self.src, self.i)
            if name:
                self.i = name.end()
        elif word == "case":
            self.blanks()
            if self.read_word() is None:
                raise ShellSyntaxError("'case' without a word")
            self.blanks(newlines=True)
            if self.peek_token() != "in":
                raise ShellSyntaxError("'case' without 'in'")
            self.i += 2
        elif word in ("for", "select"):
            self.for_head(word)
        if word in _CLOSERS:
            stack.append(_CLOSERS[word])
        return False

    def case_pattern(self) -> None:
        self.blanks(newlines=True)
        if self.src.startswith("(", self.i):
            self.i += 1
        while True:
            self.blanks()
            if self.read_word() is None:
                raise ShellSyntaxError("a case pattern is missing")
            self.blanks()
            op = self.operator()
            if op == ")":
                self.i += 1
                return
            if op != "|":
                raise ShellSyntaxError("a case pattern is not closed with ')'")
            self.i += 1

    def for_head(self, word: str) -> None:
        self.blanks()
        if word == "for" and self.src.startswith("((", self.i):
            self.script.doubt("'for ((...))' is bash syntax that /bin/sh reads differently")
            self.i = self.arithmetic(self.i + 2, "))")
        elif self.read_word() is None:
            raise ShellSyntaxError(f"'{word}' without a name")
        else:
            self.blanks(newlines=True)
            if self.peek_token() == "in":
                self.i += 2
                while True:
                    self.blanks()
                    if self.read_word() is None:
                        break
        self.blanks()
        if self.src.startswith(";", self.i) and not self.src.startswith(";;", self.i):
            self.i += 1

    def after_compound(self) -> None:
        """Redirections after ``)``, ``}``, ``fi``, ``done``, ``esac`` or ``]]``."""
        holder = SimpleCommand(nested=self.nested)
        while True:
            self.blanks()
            if not self.redirection(holder):
                return

    def compound_paren(self) -> None:
        """``( list )``, or bash's ``(( arithmetic ))``."""
        if self.src.startswith("((", self.i) and not self.posix and self.is_arithmetic(self.i + 2):
            self.script.doubt("'((...))' is bash syntax that /bin/sh reads as nested subshells")
            self.i = self.arithmetic(self.i + 2, "))")
            self.after_compound()
            return
        self.i += 1
        self.list_(")")
        self.after_compound()

    def conditional(self) -> None:
        """bash's ``[[ ... ]]``: words and operators up to ``]]``; ``<``, ``&&``,
        ``(`` are not redirections or lists there, but they are for /bin/sh."""
        self.i += 2
        self.script.doubt("'[[ ]]' is bash syntax that /bin/sh reads differently")
        self.script.doubt("'[[ ]]' may evaluate arithmetic on variables")
        while True:
            self.blanks(newlines=True)
            if self.i >= self.n:
                raise ShellSyntaxError("'[[' without ']]'")
            if self.peek_token() == "]]":
                self.i += 2
                break
            op = self.operator()
            if op is not None:
                self.i += len(op)
            elif self.read_word() is None:
                raise ShellSyntaxError("unexpected text in '[[ ]]'")
        self.after_compound()

    def function_parens(self) -> None:
        m = re.compile(r"\(\s*\)").match(self.src, self.i)
        if not m:
            raise ShellSyntaxError("a function definition needs '()'")
        self.i = m.end()

    def simple_command(self) -> bool:
        """Read one simple command; False when it was a function's ``name()``
        (its body, the next compound command, follows without a separator)."""
        start = end = self.i
        cmd = SimpleCommand(nested=self.nested)
        self.script.commands.append(cmd)
        try:
            while True:
                self.blanks()
                if self.i >= self.n or self.src[self.i] == "\n":
                    break
                if self.redirection(cmd):
                    end = self.i
                    continue
                op = self.operator()
                if op == "(" and len(cmd.words) == 1 and not cmd.assignments and not cmd.redirections:
                    self.function_parens()
                    self.script.commands.remove(cmd)
                    return False
                if op is not None:
                    break
                if not cmd.words and _ASSIGNMENT.match(self.src, self.i):
                    cmd.assignments.append(self.assignment())
                    end = self.i
                    continue
                word = self.read_word()
                if word is None:
                    break
                cmd.words.append(word)
                end = self.i
        finally:
            cmd.text = self.src[start:end].strip()
        self.judge(cmd)
        return True

    def assignment(self) -> Word:
        """``NAME=value``, ``NAME[sub]=value``, ``NAME+=value`` or ``NAME=(...)``."""
        start = self.i
        m = _ASSIGNMENT.match(self.src, self.i)
        assert m
        name = m.group(0).split("[")[0].rstrip("+=")
        if m.group(1):
            self.script.doubt("array subscripts are arithmetic that may run code in variables")
        if name in CODE_VARIABLES:
            self.script.doubt(f"assigning {name} changes what later commands run")
        if self.src.startswith("(", m.end()) and not self.posix:  # bash array: name=(words...)
            self.script.doubt("array assignments are bash syntax that /bin/sh rejects")
            self.i = m.end() + 1
            while True:
                self.blanks(newlines=True)
                if self.src.startswith(")", self.i):
                    self.i += 1
                    break
                if self.read_word() is None:
                    raise ShellSyntaxError("unterminated array assignment")
        else:
            self.read_word(assignment=True)
        return Word(self.src[start : self.i], [self.src[start : self.i]])

    def redirection(self, cmd: SimpleCommand) -> bool:
        """Read one redirection into ``cmd`` if one starts here."""
        at = self.i
        io = (_FD_NUMBER if self.posix else _IO_NUMBER).match(self.src, self.i)
        if io:
            if io.group(0).startswith("{"):
                self.script.doubt("'{var}>' redirections are bash syntax")
            self.i = io.end()
        op = self.operator()
        if op not in _REDIRECTS or self.src.startswith(("<(", ">("), self.i):
            self.i = at
            return False
        self.bash_only(op)
        self.i += len(op)
        self.blanks()
        word_start = self.i
        word = self.read_word()
        if word is None:
            raise ShellSyntaxError(f"'{op}' without a target")
        if op in ("<<", "<<-"):
            self.pending_heredoc(self.src[word_start : self.i], strip_tabs=op == "<<-")
        redirection = Redirection(op, word.raw)
        cmd.redirections.append(redirection)
        self.script.redirections.append(redirection)
        return True

    def judge(self, cmd: SimpleCommand) -> None:
        """Doubts a simple command raises by itself."""
        argv = cmd.argv
        if not argv:
            return
        first = cmd.words[0]
        if argv[0] is None or first.glob:
            self.script.doubt(f"the command name '{first.raw}' is only known when it runs")
            return
        if first.brace:
            self.script.doubt("brace expansion makes the command name; /bin/sh does not expand braces")
        unwrapped = cmd.unwrapped
        if unwrapped != argv and (not unwrapped or unwrapped[0] is None or unwrapped[0].startswith("-")):
            if not (argv[0] == "command" and argv[1:2] in (["-v"], ["-V"])):  # a lookup runs nothing
                self.script.doubt(f"'{argv[0]}' runs a command this check cannot name")
            return
        name, args = unwrapped[0], unwrapped[1:]
        if name in EVALUATORS:
            self.script.doubt(f"'{name}' can run text as shell code or change what a command name means")
        elif name in _SUBSCRIPTS and any(a is None or "[" in a or _names_code_variable(a) for a in args):
            self.script.doubt(f"'{name}' with these arguments may evaluate an array subscript or set a code variable")
        elif name in ("printf", "test", "[") and "-v" in args:
            self.script.doubt(f"'{name} -v' may evaluate an array subscript")


def _names_code_variable(arg: str) -> bool:
    m = _ASSIGNMENT.match(arg)
    return bool(m) and m.group(0).split("[")[0].rstrip("+=") in CODE_VARIABLES
