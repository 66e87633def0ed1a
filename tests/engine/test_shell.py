"""roo_daemon.engine.shell: the simple commands of a line with their words,
and the flags the command policy needs (test_shell_vs_bash.py checks the
same against bash and dash on generated lines)."""

from __future__ import annotations

import pytest

from roo_daemon.engine.shell import parse, parse_as


def argvs(line: str) -> list[list[str | None]]:
    return [c.argv for c in parse(line).commands if not c.posix_only]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("a && b || c; d | e |& f & g", [["a"], ["b"], ["c"], ["d"], ["e"], ["f"], ["g"]]),
        ("echo 'a\necho b' ; touch X", [["echo", "a\necho b"], ["touch", "X"]]),
        ('echo "a;b" \\; c\\ d', [["echo", "a;b", ";", "c d"]]),
        ("r\\\nm -rf x", [["rm", "-rf", "x"]]),  # a line continuation inside a word
        ("echo a # ; rm x\nls", [["echo", "a"], ["ls"]]),
        ("echo a#b", [["echo", "a#b"]]),
        ("X=1 Y='a b' cmd arg", [["cmd", "arg"]]),
        ("echo $(whoami) `id`", [["echo", None, None], ["whoami"], ["id"]]),
        ('echo "$(a "$(b)")"', [["echo", None], ["a", None], ["b"]]),
        ("echo ${x:-$(a)} ${#y}", [["echo", None, None], ["a"]]),
        ("diff <(a) >(b)", [["diff", None, None], ["a"], ["b"]]),
        ("( a; b ) && { c; }", [["a"], ["b"], ["c"]]),
        ("if a; then b; elif c; then d; else e; fi", [["a"], ["b"], ["c"], ["d"], ["e"]]),
        ("while a; do b; done; until c; do d; done", [["a"], ["b"], ["c"], ["d"]]),
        ("for i in 1 2; do a $i; done", [["a", None]]),
        ("case $x in a|b) c;; (d) e;; *) f;; esac", [["c"], ["e"], ["f"]]),
        ("f() { a; }; f", [["a"], ["f"]]),
        ("! a | b", [["a"], ["b"]]),
        ("echo {a,b}c x{1..3}", [["echo", "ac", "bc", "x1", "x2", "x3"]]),
        ("echo '{a,b}' {a}", [["echo", "{a,b}", "{a}"]]),
        ("cat <<EOF\n$(a)\n`b`\nEOF\nc", [["cat"], ["a"], ["b"], ["c"]]),
        ("cat <<'EOF'\n$(a)\nEOF\nc", [["cat"], ["c"]]),
        ("cat <<-EOF\n\t$(a)\n\tEOF\nc", [["cat"], ["a"], ["c"]]),
        ("cat <<A <<B\na\nA\n$(b)\nB\nc", [["cat"], ["b"], ["c"]]),
        ("echo $((1 + (2)))", [["echo", None]]),
        ("echo $((a) )", [["echo", None], ["a"]]),  # not arithmetic: a subshell in $( )
    ],
)
def test_commands_and_words(line, expected):
    assert argvs(line) == expected


def test_text_is_the_command_as_written():
    script = parse('echo "$(whoami)" done 2>&1 | tail -5 # note')
    # in source order: a command, then those nested in it
    assert [c.text for c in script.commands] == ['echo "$(whoami)" done 2>&1', "whoami", "tail -5"]
    assert [c.nested for c in script.commands] == [False, True, False]
    assert script.commands[0].normalized == 'echo "$(whoami)" done'
    assert parse("r'm' -rf \"x y\"").commands[0].normalized == "rm -rf x y"


def test_flags_and_redirections():
    script = parse("a > out 2>&1 < in >&- &\nb <<< word")
    assert script.background and not script.substitutions and not script.process_substitutions
    assert [(r.op, r.target, r.to_file) for r in script.redirections] == [
        (">", "out", True),
        (">&", "1", False),
        ("<", "in", True),
        (">&", "-", False),
        ("<<<", "word", False),
    ]
    assert parse("a $(b)").substitutions and parse("a <(b)").process_substitutions
    assert parse("( a ) > f").redirections[0].to_file
    assert not parse("a && b").background


def test_bash_and_posix_readings_are_both_reported():
    # bash: $'...' quotes through the ';'; dash: $ then '\' then a command.
    line = "echo $'\\' ; rm x\necho '"
    assert [c.argv for c in parse_as(line, posix=False).commands] == [["echo", None]]
    posix = parse_as(line, posix=True)
    assert ["rm", "x"] in [c.argv for c in posix.commands] and posix.error
    both = parse(line)
    assert [c.argv for c in both.commands if c.posix_only] == [["echo", "$\\"], ["rm", "x"], ["echo"]]
    assert any("read this command line differently" in u for u in both.unsure)
    # (( )) is arithmetic to bash, nested subshells to dash
    assert ["rm", "x"] in [c.argv for c in parse("((rm x))").commands if c.posix_only]


@pytest.mark.parametrize(
    "line",
    ["echo 'open", 'echo "open', "echo $(open", "echo `open", "echo ${open", "a &&", "| a", "a ;; b", "fi"]
    + ["(a", "a )"],
)
def test_syntax_errors_are_recorded_not_raised(line):
    script = parse_as(line, posix=False)
    assert script.error and script.unsure[0].startswith("the shell syntax could not be parsed")


def test_commands_before_a_syntax_error_are_kept():
    assert ["rm", "x"] in argvs("rm x\necho 'open")


def test_deep_nesting_is_a_doubt_not_a_crash():
    line = "$(" * 2000 + "a" + ")" * 2000
    assert parse(line).unsure


def test_line_continuations_are_removed_before_every_lookahead():
    assert argvs("i\\\nf a; then b; fi") == [["a"], ["b"]]
    assert argvs("a &\\\n& b") == [["a"], ["b"]]
    assert not parse("a &\\\n& b").background
    assert parse("X\\\n=1 rm x").commands[0].assignments[0].raw == "X=1"
    assert argvs("cat <<EOF\nEO\\\nF\nrm y") == [["cat"], ["rm", "y"]]  # the joined line ends the body
    assert argvs("cat <<'EOF'\nEO\\\nF\nEOF\nrm y") == [["cat"], ["rm", "y"]]
    assert argvs("echo a # x \\\nrm b") == [["echo", "a"], ["rm", "b"]]  # a comment does not continue


def test_words_as_each_shell_reads_them():
    # dash has no brace expansion: both argvs are reported, with no doubt (same commands)
    script = parse("mkdir -p src/{a,b}")
    assert [c.argv for c in script.commands] == [["mkdir", "-p", "src/a", "src/b"], ["mkdir", "-p", "src/{a,b}"]]
    assert [c.posix_only for c in script.commands] == [False, True] and not script.unsure
