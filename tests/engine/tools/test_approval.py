"""command_verdict: Roo's allow/deny prefix lists, longest prefix wins,
denied beats execute, the global list beats everything, chained commands."""

from __future__ import annotations

import pytest

from roo_daemon.engine.approval import command_decision, command_verdict, longest_prefix, split_command


def policy(allowed=(), denied=(), execute=False):
    return {"allowed_commands": list(allowed), "denied_commands": list(denied), "execute": execute}


@pytest.mark.parametrize(
    "command, allowed, denied, execute, verdict",
    [
        # nothing configured: ask
        ("ls -la", [], [], False, "ask"),
        # an allowed prefix, case-insensitive
        ("git status", ["git"], [], False, "allow"),
        ("GIT status", ["git"], [], False, "allow"),
        ("npm test", ["git"], [], False, "ask"),
        # a denied prefix
        ("rm -rf build", [], ["rm"], False, "deny"),
        # longest prefix wins, either way; a tie goes to denied
        ("git push origin main", ["git"], ["git push"], False, "deny"),
        ("git push --dry-run", ["git push --dry-run"], ["git push"], False, "allow"),
        ("git status", ["git"], ["git push"], False, "allow"),
        ("git push", ["git push"], ["git push"], False, "deny"),
        # execute allows everything, like Roo's "*" ...
        ("make build", [], [], True, "allow"),
        # ... but any denied prefix beats it
        ("rm -rf /tmp/x", [], ["rm"], True, "deny"),
        ("sudo make install", ["sudo make"], ["sudo"], True, "allow"),
        # an explicit "*" entry behaves like execute
        ("anything at all", ["*"], ["rm"], False, "allow"),
        ("rm x", ["*"], ["rm"], False, "deny"),
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
        ("diff <(ls a) <(ls b)", ["diff", "ls"], [], "ask"),  # process substitution: asked, as a redirection
        # quotes protect operators
        ("echo 'a && rm -rf /'", ["echo"], ["rm"], "allow"),
        ('git commit -m "fix; rm it | now"', ["git commit"], ["rm"], "allow"),
        # fd duplication is not a file redirection
        ("npm test 2>&1", ["npm test"], [], "allow"),
        ("npm test 2>&1 | tail -20", ["npm test", "tail"], [], "allow"),
        # file redirection, background jobs and dangerous substitutions are asked, never auto-approved
        ("echo hi > ~/.bashrc", ["echo"], [], "ask"),
        ("cat < /etc/shadow", ["cat"], [], "ask"),
        ("sleep 100 &", ["sleep"], [], "ask"),
        ("npm test &> log.txt", ["npm test"], [], "ask"),
        ('echo "${x@P}"', ["echo"], [], "ask"),
        ("echo ${!name}", ["echo"], [], "ask"),
        # a redirect with a denied part is still denied
        ("rm x > out", ["*"], ["rm"], "deny"),
    ],
)
def test_chained_commands(command, allowed, denied, verdict):
    assert command_verdict(policy(allowed, denied), command) == verdict


def test_global_denied_beats_everything():
    permissive = policy(allowed=["sudo rm -rf /var/cache"], execute=True)
    assert command_verdict(permissive, "sudo rm -rf /var/cache/apt", ["sudo"]) == "deny"
    assert command_verdict(permissive, "ls && SUDO reboot", ["sudo"]) == "deny"
    assert command_verdict(permissive, "ls", ["sudo"]) == "allow"
    decision = command_decision(permissive, "ls && sudo reboot", ["sudo"])
    assert decision.verdict == "deny" and "daemon's denied command prefix 'sudo'" in decision.reason


def test_env_assignments_do_not_dodge_a_denial_nor_earn_an_approval():
    assert command_verdict(policy(denied=["rm"], execute=True), "FOO=1 rm -rf x") == "deny"
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
