"""command_verdict: Roo's getCommandDecision (allow/deny prefix lists,
longest prefix wins, ``*`` only when listed) behind ``execute`` (Roo's
alwaysAllowExecute); the global list beats everything; chained commands."""

from __future__ import annotations

import pytest

from roo_daemon.engine.approval import command_decision, command_verdict, longest_prefix, split_command


def policy(allowed=(), denied=(), execute=True):
    return {"allowed_commands": list(allowed), "denied_commands": list(denied), "execute": execute}


@pytest.mark.parametrize(
    "command, allowed, denied, execute, verdict",
    [
        # nothing configured: ask
        ("ls -la", [], [], True, "ask"),
        # an allowed prefix, case-insensitive
        ("git status", ["git"], [], True, "allow"),
        ("GIT status", ["git"], [], True, "allow"),
        ("npm test", ["git"], [], True, "ask"),
        # a denied prefix
        ("rm -rf build", [], ["rm"], True, "deny"),
        # longest prefix wins, either way; a tie goes to denied
        ("git push origin main", ["git"], ["git push"], True, "deny"),
        ("git push --dry-run", ["git push --dry-run"], ["git push"], True, "allow"),
        ("git status", ["git"], ["git push"], True, "allow"),
        ("git push", ["git push"], ["git push"], True, "deny"),
        # execute alone approves nothing: "*" must be listed (Roo)
        ("make build", [], [], True, "ask"),
        ("make build", ["git"], [], True, "ask"),
        # "*" allows everything, but any denied prefix beats it
        ("anything at all", ["*"], ["rm"], True, "allow"),
        ("rm x", ["*"], ["rm"], True, "deny"),
        ("sudo make install", ["*", "sudo make"], ["sudo"], True, "allow"),
        # execute off: every command asks, allowed or denied (Roo's alwaysAllowExecute)
        ("git status", ["git"], [], False, "ask"),
        ("anything", ["*"], [], False, "ask"),
        ("rm -rf build", [], ["rm"], False, "ask"),
    ],
)
def test_single_commands(command, allowed, denied, execute, verdict):
    assert command_verdict(policy(allowed, denied, execute), command) == verdict


@pytest.mark.parametrize(
    "command, allowed, denied, verdict",
    [
        # every part of a chain must be allowed
        ("git status && npm test", ["git", "npm test"], [], "allow"),
        ("git status && npm install", ["git", "npm test"], [], "ask"),
        ("git status || echo failed", ["git", "echo"], [], "allow"),
        ("git log | head -5", ["git", "head"], [], "allow"),
        ("git log | grep x", ["git", "head"], [], "ask"),
        ("git status; ls", ["git", "ls"], [], "allow"),
        ("git status\nls", ["git", "ls"], [], "allow"),
        # one denied part denies the whole line, even with everything else allowed
        ("git status && rm -rf src", ["git", "rm -rf src/x"], ["rm"], "deny"),
        ("echo ok; rm -rf /", ["echo"], ["rm"], "deny"),
        ("cat f | sh", ["cat"], ["sh"], "deny"),
        # commands inside substitutions are checked too
        ("echo $(rm -rf x)", ["echo"], ["rm"], "deny"),
        ("echo `whoami`", ["echo"], [], "ask"),
        ('echo "$(id)"', ["echo", "id"], [], "allow"),
        ("diff <(ls a) <(ls b)", ["diff", "ls"], [], "ask"),  # process substitution: bash only, /bin/sh differs
        # quotes protect operators
        ("echo 'a && rm -rf /'", ["echo"], ["rm"], "allow"),
        ('git commit -m "fix; rm it | now"', ["git commit"], ["rm"], "allow"),
        # fd duplication is not a file redirection
        ("npm test 2>&1", ["npm test"], [], "allow"),
        ("npm test 2>&1 | tail -20", ["npm test", "tail"], [], "allow"),
        # redirections and background jobs are part of an allowed command, as in Roo
        ("echo hi > out.txt", ["echo"], [], "allow"),
        ("cat < notes.txt", ["cat"], [], "allow"),
        ("sleep 100 &", ["sleep"], [], "allow"),
        ("sleep 100 & rm x", ["sleep"], ["rm"], "deny"),
        ("sleep 100 & ls", ["sleep"], [], "ask"),
        # dangerous substitutions are asked, never auto-approved
        ('echo "${x@P}"', ["echo"], [], "ask"),
        ("echo ${!name}", ["echo"], [], "ask"),
        # a redirect with a denied part is still denied
        ("rm x > out", ["*"], ["rm"], "deny"),
    ],
)
def test_chained_commands(command, allowed, denied, verdict):
    assert command_verdict(policy(allowed, denied), command) == verdict


def test_global_denied_beats_everything():
    assert command_verdict(policy(execute=False), "sudo ls", ["sudo"]) == "deny"  # even with execute off
    permissive = policy(allowed=["*", "sudo rm -rf /var/cache"])
    assert command_verdict(permissive, "sudo rm -rf /var/cache/apt", ["sudo"]) == "deny"
    assert command_verdict(permissive, "ls && SUDO reboot", ["sudo"]) == "deny"
    assert command_verdict(permissive, "ls", ["sudo"]) == "allow"
    decision = command_decision(permissive, "ls && sudo reboot", ["sudo"])
    assert decision.verdict == "deny" and "daemon's denied command prefix 'sudo'" in decision.reason


def test_env_assignments_do_not_dodge_a_denial_nor_earn_an_approval():
    assert command_verdict(policy(denied=["rm"]), "FOO=1 rm -rf x") == "deny"
    assert command_verdict(policy(), 'A="x y" B=2 rm x', ["rm"]) == "deny"
    # LD_PRELOAD=... git status is not "git status"
    assert command_verdict(policy(allowed=["git status"]), "LD_PRELOAD=/tmp/evil.so git status") == "ask"


def test_split_command():
    assert split_command("a && b || c; d | e") == ["a", "b", "c", "d", "e"]
    assert split_command("echo 'x; y' && ls") == ["echo 'x; y'", "ls"]
    assert split_command('echo "$(whoami)" done') == ['echo "$(whoami)" done', "whoami"]
    assert split_command("npm test 2>&1 | tail") == ["npm test 2>&1", "tail"]
    assert split_command("a\n\nb\r\nc") == ["a", "b", "c"]
    assert split_command("echo $((1 + 2))") == ["echo $((1 + 2))"]
    assert split_command("   ") == []


def test_longest_prefix():
    assert longest_prefix("git push origin", ["git", "git push"]) == "git push"
    assert longest_prefix("npm install", ["*", "npm"]) == "npm"
    assert longest_prefix("unknown", ["git", "npm"]) is None
    assert longest_prefix("anything", ["*"]) == "*"


# Issue #9 item 7: a newline inside quotes neither splits a command nor hides one.
QUOTED_NEWLINES = "echo 'a\necho b' ; touch X ; echo '\necho c'"


@pytest.mark.parametrize(
    "command",
    [
        QUOTED_NEWLINES,
        'echo "a\necho b" ; touch X ; echo "\necho c"',
        "echo 'x\n' && touch X",
        "echo a\\\n; touch X",  # a line continuation, then a real separator
        "echo $(echo ')\n') ; touch X",
        "echo `echo '\n'` ; touch X",
        "cat <<'EOF'\n'\nEOF\ntouch X",  # the quote is in a here-doc body, the touch is a command
        'echo "$(printf \'\n"\')" ; touch X',
    ],
)
def test_quoted_newlines_do_not_hide_a_command(command):
    assert command_verdict(policy(allowed=["echo", "cat", "printf"]), command) == "ask"
    decision = command_decision(policy(allowed=["echo", "cat", "printf"], denied=["touch"]), command)
    assert decision.verdict == "deny" and "touch" in decision.reason
    assert command_verdict(policy(allowed=["*"]), command, ["touch"]) == "deny"


def test_quoted_separators_and_newlines_are_one_argument():
    assert command_verdict(policy(allowed=["echo"]), "echo 'a\n; touch X'") == "allow"
    assert command_verdict(policy(allowed=["echo"], denied=["touch"]), 'echo "a\ntouch X"') == "allow"


@pytest.mark.parametrize(
    "command",
    [
        "r'm' -rf x",
        'r"m" -rf x',
        "\\rm -rf x",
        "r\\\nm -rf x",
        "{rm,-rf,x}",
        "echo ok; ( rm -rf x )",
        "{ rm -rf x; }",
        "if true; then rm -rf x; fi",
        "for f in a; do rm -rf $f; done",
        "case a in a) rm -rf x;; esac",
        "echo ${x:-$(rm -rf x)}",
        "cat <<EOF\n$(rm -rf x)\nEOF",
        "! rm -rf x",
        "time rm -rf x",
        "echo x |& rm -rf x",
        "f() { rm -rf x; }",
        "[[ -n x ]] && rm -rf x",
        "echo $'\\' ; rm -rf x\necho '",  # bash: one quoted word; /bin/sh (dash): runs rm
        "exec rm -rf x",
        "command -p rm -rf x",
        "builtin exec rm -rf x",
    ],
)
def test_denied_command_found_in_every_shell_construct(command):
    decision = command_decision(policy(denied=["rm"]), command)
    assert decision.verdict == "deny", decision


# Issue #16 item 4: commands inside <(...) and >(...) meet the deny lists.
@pytest.mark.parametrize(
    "command", ["diff <(rm -rf x) y", "diff y <(ls) <(rm -rf x)", "tee >(rm -rf x) < f", "cat a<(rm -rf x)"]
)
def test_process_substitution_commands_meet_the_deny_lists(command):
    permissive = policy(allowed=["diff", "tee", "cat", "ls"], denied=["rm"])
    decision = command_decision(permissive, command)
    assert decision.verdict == "deny" and "rm -rf x" in decision.reason, decision
    assert command_verdict(policy(allowed=["*"]), command, ["rm"]) == "deny"
    assert command_verdict(policy(allowed=["diff", "tee", "cat", "ls", "rm"]), command) == "ask"


@pytest.mark.parametrize(
    "command, reason",
    [
        ("echo 'unbalanced", "could not be parsed"),
        ('echo "unbalanced', "could not be parsed"),
        ("echo $(echo", "could not be parsed"),
        ("echo ok )", "could not be parsed"),
        ("eval echo hi", "'eval'"),
        ("source ./x.sh", "'source'"),
        (". ./x.sh", "'.'"),
        ("trap 'echo hi' EXIT", "'trap'"),
        ("$CMD hi", "only known when it runs"),
        ("$(echo echo) hi", "only known when it runs"),
        ("/bin/ec? hi", "only known when it runs"),
        ("echo $((x + 1))", "arithmetic"),
        ("PS4='$(echo hi)' echo", "PS4"),
        ("echo \"${x:-'}'}\"", "read differently"),
        ("echo $'a'", "bash syntax"),
        ("cat <<EOF\nno end line", "here-document"),
        ("declare -n 'ref=a[$(id)]'", "'declare'"),
        ("command eval echo", "'eval'"),
        ("exec -a name echo", "'exec' runs a command this check cannot name"),
        ("export PATH=./bin", "'export'"),
        ("read 'a[$(id)]'", "'read'"),
    ],
)
def test_what_the_parser_cannot_vouch_for_is_asked_not_allowed(command, reason):
    decision = command_decision(
        policy(allowed=["echo", "eval", "source", ".", "trap", "cat", "declare", "export", "read"]), command
    )
    assert decision.verdict == "ask" and reason in decision.reason, decision


def test_wrappers_that_run_the_next_word_as_it_is():
    assert command_verdict(policy(allowed=["*"]), "echo started; exec sleep 5") == "allow"
    assert command_verdict(policy(allowed=["command -v"]), "command -v git") == "allow"
    assert command_verdict(policy(allowed=["exec"], denied=["sleep"]), "exec sleep 5") == "deny"


def test_here_docs_and_comments():
    everything = policy(allowed=["cat", "echo"])
    assert command_verdict(everything, "echo hi # ; rm -rf x") == "allow"
    assert command_verdict(policy(allowed=["echo"], denied=["rm"]), "echo hi # ; rm -rf x") == "allow"
    # a quoted here-doc's body is text, not commands
    assert command_verdict(policy(allowed=["cat"], denied=["rm"]), "cat <<'EOF'\n$(rm -rf x)\nEOF") == "allow"
    assert command_verdict(policy(allowed=["cat"], denied=["rm"]), "cat <<EOF\n$(rm -rf x)\nEOF") == "deny"
    assert command_verdict(policy(allowed=["cat"], denied=["rm"]), "cat <<EOF\n\\$(rm -rf x)\nEOF") == "allow"
