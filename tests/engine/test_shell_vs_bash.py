"""Property tests of roo_daemon.engine.shell against the shells themselves.

Command lines are generated from a grammar of words (quotes, escapes, line
continuations, expansions, substitutions, brace expansion), operators,
compound commands, here-docs and comments; each is run by bash (and the POSIX
subset by dash, the /bin/sh commands actually run under) with stub
executables that log their argv (tests/engine/shell_oracle.py), and the
commands that ran are compared with the ones the parser reports:

- nothing runs that the parser did not report (what the command policy
  relies on), and
- everything the parser reports for a generated line does run.

Stubs exit 0 when the line chains with ``&&`` and 1 when it chains with
``||``, so that every command of a generated line runs. The default run is
small; ``-m slow`` runs many more examples.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from roo_daemon.engine.shell import Script, SimpleCommand, parse, parse_as
from tests.engine.shell_oracle import STUBS, Oracle
from tests.needs import which_or_skip

# Characters that would end a word or start something if they were not quoted.
_SPECIAL = " \t\n;&|()<>$`\\\"'#{}*?[]=~!,"
_PLAIN = "abcxyz019._-/:+%@"
_BODY_EXPANSIONS = ["$(ka b1)", "`kb b2`", "${u5:-$(kc b3)}", "$u1", "\\$(rm b4)", "'$(rm b5)'"]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    which_or_skip("bash", "Debian's bash package")
    which_or_skip("dash", "Debian's dash package, /bin/sh")
    return Oracle(tmp_path_factory.mktemp("stubs"))


class Grammar:
    """Generates command lines. ``bash``: bash syntax allowed; ``chain``:
    the conditional operator used (``&&`` or ``||``)."""

    def __init__(self, bash: bool, chain: str) -> None:
        self.bash, self.chain = bash, chain

    def plain(self) -> st.SearchStrategy[str]:
        return st.text(_PLAIN, min_size=1, max_size=4)

    def single_quoted(self) -> st.SearchStrategy[str]:
        return st.text(_SPECIAL.replace("'", "") + "ab", max_size=6).map(lambda t: f"'{t}'")

    def escaped(self) -> st.SearchStrategy[str]:
        return st.sampled_from(_SPECIAL).map(lambda c: "\\" + c)

    def double_quoted(self, depth: int) -> st.SearchStrategy[str]:
        inner = st.one_of(
            st.text(_SPECIAL.replace('"', "").replace("$", "").replace("`", "").replace("\\", "") + "ab", max_size=5),
            st.sampled_from(['\\"', "\\$", "\\`", "\\\\", "\\\n", "\\a", "'"]),
            self.expansion(depth),
        )
        return st.lists(inner, max_size=3).map(lambda parts: '"' + "".join(parts) + '"')

    def expansion(self, depth: int) -> st.SearchStrategy[str]:
        options = [
            st.sampled_from(["$u1", "${u2}", "$((1+2))", "$#", "$/"]),
            self.plain().map(lambda t: "${u3:-" + t + "}"),
        ]
        if depth > 0:
            options += [
                self.program(depth - 1, nested=True).map(lambda p: f"$({p}\n)"),
                self.program(depth - 1, nested=True).map(lambda p: f"$( {p} )" if not p.endswith("\n") else f"$({p})"),
                self.simple(depth - 1, heredoc=False).map(_backquoted),
                self.simple(depth - 1, heredoc=False).map(lambda c: "${u4:-$(" + c + ")}"),
            ]
        return st.one_of(options)

    def word(self, depth: int) -> st.SearchStrategy[str]:
        part = st.one_of(
            self.plain(), self.single_quoted(), self.escaped(), self.double_quoted(depth), self.expansion(depth)
        )
        if self.bash:  # bash's own quotes, unquoted only (inside "..." they are a $ and a quote)
            part = st.one_of(part, st.sampled_from(["$'a;\\'b'", '$"x;y"']))
        words = st.lists(part, min_size=1, max_size=3).map("".join)
        if self.bash:
            braces = st.sampled_from(["{a,b}", "x{1..3}", "{p,'q r'}"])
            proc = self.program(depth - 1, nested=True).map(lambda p: f"<({p}\n)") if depth > 0 else braces
            words = st.one_of(words, braces, proc)
        return words.filter(
            lambda w: w.replace("\\\n", "") and (not w.startswith(("#", "{", "!")) or w.startswith(("{a", "{p")))
        )

    def name(self) -> st.SearchStrategy[str]:
        def quote(name: str, how: int) -> str:
            return [name, f"'{name}'", f'"{name[0]}"{name[1:]}', f"{name[0]}\\{name[1:]}", f"{name[0]}\\\n{name[1:]}"][
                how
            ]

        return st.builds(quote, st.sampled_from(STUBS), st.integers(0, 4))

    def simple(self, depth: int, heredoc: bool = True) -> st.SearchStrategy[str]:
        redirect = st.sampled_from([" > f1", " 2>&1", " < /dev/null", " >> f2"] + ([" &> f3"] if self.bash else []))

        @st.composite
        def build(draw: st.DrawFn) -> str:
            text = ""
            if draw(st.booleans()):
                text += f"v{draw(st.integers(1, 3))}={draw(self.word(depth))} "
            text += draw(self.name())
            for arg in draw(st.lists(self.word(depth), max_size=3)):
                text += draw(st.sampled_from([" ", "  ", "\t", " \\\n "])) + arg
            if draw(st.booleans()):
                text += draw(redirect)
            if heredoc and draw(st.integers(0, 5)) == 0:
                quoted = draw(st.booleans())
                body = draw(st.lists(st.one_of(self.plain(), st.sampled_from(_BODY_EXPANSIONS)), max_size=3))
                text += (" <<'EOF'" if quoted else " <<EOF") + "\n" + " ".join(body) + "\nEOF\n"
            return text

        return build()

    def command(self, depth: int, nested: bool) -> st.SearchStrategy[str]:
        # bash 5.2 drops a ';' on the lines after a here-doc inside $(...) or
        # <(...) (two commands run as one): no here-docs there.
        options = [self.simple(depth, heredoc=not nested)]
        if depth > 0:
            sub = self.program(depth - 1, nested)
            options += [
                sub.map(lambda p: f"( {p}\n)"),
                sub.map(lambda p: "{ " + p + "\n}"),
                st.builds(lambda w, p: f"case {w} in (x|*) {p}\n;; esac", self.word(depth - 1), sub),
                st.builds(lambda p: f"for v9 in one; do {p}\ndone", sub),
            ]
            if self.chain == "&&":
                options.append(st.builds(lambda c, p: f"if {c}\nthen {p}\nfi", sub, sub))
            if self.bash:
                test = "-n" if self.chain == "&&" else "-z"
                options.append(self.word(depth - 1).map(lambda w: f"[[ {test} x{w} ]]"))
        return st.one_of(options)

    def program(self, depth: int, nested: bool = False) -> st.SearchStrategy[str]:
        separators = [";", " ; ", "\n", ";\n", f" {self.chain} ", f" {self.chain}\n", " | "]
        if self.chain == "&&":
            separators.append(" & ")
        if self.bash:
            separators.append(" |& ")

        @st.composite
        def build(draw: st.DrawFn) -> str:
            items = draw(st.lists(self.command(depth, nested), min_size=1, max_size=3))
            text = ""
            for k, item in enumerate(items):
                text += item
                if k < len(items) - 1 and not item.endswith("\n"):
                    sep = draw(st.sampled_from(separators))
                    text += sep
            if draw(st.integers(0, 4)) == 0 and not text.endswith("\n"):
                text += " # " + draw(st.text(_SPECIAL.replace("\n", "") + "ka", max_size=8)) + "\n"
            return text

        return build()


def _backquoted(command: str) -> str:
    """Nest a command in backquotes, escaped as the shell unescapes it there."""
    return "`" + command.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$") + "`"


def lines(bash: bool, depth: int = 1) -> st.SearchStrategy[tuple[str, int]]:
    def one(chain: str) -> st.SearchStrategy[tuple[str, int]]:
        return Grammar(bash, chain).program(depth).map(lambda line: (line, 0 if chain == "&&" else 1))

    return st.one_of(one("&&"), one("||"))


def _prefix(command: SimpleCommand) -> tuple[str, ...]:
    out = []
    for value in command.argv:
        if value is None:
            break
        out.append(value)
    return tuple(out)


def _matches(ran: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return len(ran) >= len(prefix) and ran[: len(prefix)] == prefix


def check(script: Script, ran: list[tuple[str, ...]], line: str, complete: bool) -> None:
    reported = [_prefix(c) for c in script.commands if c.argv and c.argv[0] in STUBS]
    for argv in ran:
        assert any(_matches(argv, p) for p in reported), f"{argv} ran but was not reported for {line!r}: {reported}"
    if complete:
        for prefix in reported:
            assert any(_matches(argv, prefix) for argv in ran), f"{prefix} reported but did not run for {line!r}: {ran}"


def compare(shell: str, oracle: Oracle, line: str, status: int) -> None:
    """The reading for ``shell`` reports exactly what it ran (when the shell
    accepts the line's syntax: a line the generator got wrong only has to be
    sound), and the policy's combined reading reports at least that."""
    ran = oracle.run(shell, line, status)
    script = parse_as(line, posix=shell != "bash")
    valid = oracle.syntax_ok(shell, line)
    if valid:
        assert script.error is None, (line, script.error)
    check(script, ran, line, complete=valid)
    check(parse(line), ran, line, complete=False)


_SETTINGS = {
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    # Shrinking reruns shells for minutes; a failure prints its line as generated.
    "phases": [Phase.explicit, Phase.generate],
    # The default run is the same set of lines every time (reproducible in CI);
    # -m slow draws new ones.
    "derandomize": True,
}


@settings(max_examples=40, **_SETTINGS)
@given(lines(bash=True))
def test_reported_commands_are_the_ones_bash_runs(oracle: Oracle, case: tuple[str, int]) -> None:
    line, status = case
    compare("bash", oracle, line, status)


@settings(max_examples=25, **_SETTINGS)
@given(lines(bash=False))
def test_reported_commands_are_the_ones_dash_runs(oracle: Oracle, case: tuple[str, int]) -> None:
    line, status = case
    compare("dash", oracle, line, status)


@settings(max_examples=25, **_SETTINGS)
@given(lines(bash=True), st.integers(0, 10_000), st.sampled_from(["bash", "dash"]))
def test_a_cut_line_never_runs_an_unreported_command(
    oracle: Oracle, case: tuple[str, int], cut: int, shell: str
) -> None:
    """A line cut anywhere (unbalanced quotes, open substitutions): whatever
    the shell still runs was reported."""
    line, status = case
    line = line[: cut % (len(line) + 1)]
    ran = oracle.run(shell, line, status)
    check(parse(line), ran, line, complete=False)


@pytest.mark.slow
@settings(max_examples=1500, **{**_SETTINGS, "phases": list(Phase), "derandomize": False})
@given(lines(bash=True), st.integers(0, 10_000))
def test_many_lines_against_bash_and_dash(oracle: Oracle, case: tuple[str, int], cut: int) -> None:
    line, status = case
    compare("bash", oracle, line, status)
    check(parse(line), oracle.run("dash", line, status), line, complete=False)
    short = line[: cut % (len(line) + 1)]
    check(parse(short), oracle.run("bash", short, status), short, complete=False)


def test_the_oracle_sees_background_jobs_and_process_substitutions(oracle: Oracle) -> None:
    ran = oracle.run("bash", "ka 'x y' & kb <(kc) >(rm -rf z)", 0)
    assert ("ka", "x y") in ran and ("rm", "-rf", "z") in ran and ("kc",) in ran, ran
    assert len(ran) == 4 and [r for r in ran if r[0] == "kb"][0][1].startswith("/dev/fd/"), ran
