"""Socket activation: the daemon serves on a listening socket passed as fd 3
(LISTEN_FDS=1, LISTEN_PID=its own pid) instead of binding one, as under a
``roo-daemon.socket`` unit."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from roo_daemon.sockets import SocketActivationError, check_exposure, describe, listen_fds, tcp_port
from tests.ops.conftest import OpsDaemonFactory, activation_wrapper


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening loopback socket, as systemd's ListenStream=127.0.0.1:PORT makes."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield sock
    sock.close()


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status


def test_daemon_serves_on_the_passed_socket_and_binds_none_of_its_own(
    ops_daemon: OpsDaemonFactory, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    d = ops_daemon(prefix=activation_wrapper(listener.fileno()), pass_fds=(listener.fileno(),))
    assert d.start() == port  # the "listening on" record names the passed socket's port
    listening = d.wait_for_log("listening on")
    assert listening["socket_activated"] is True
    assert f"http://127.0.0.1:{port}" in listening["msg"]
    assert d.wait_for_log("adopted socket")["fd"] == 3
    assert get(f"http://127.0.0.1:{port}/healthz") == 200
    # --port 0 was on the command line: had it bound its own socket, it
    # would listen on a second port. It listens on ours only.
    assert listening_ports(d.pid) == {port}
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    # The socket is systemd's (here the test's): it is still open and
    # listening after the daemon exits, so the next start can adopt it.
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def test_listen_pid_of_another_process_is_ignored(ops_daemon: OpsDaemonFactory) -> None:
    """LISTEN_FDS meant for another pid: the daemon binds its own port."""
    d = ops_daemon(env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    port = d.start()
    assert d.wait_for_log("listening on")["socket_activated"] is False
    assert d.find_log(lambda r: "ignoring LISTEN_FDS meant for pid 1" in str(r.get("msg")))
    assert get(f"http://127.0.0.1:{port}/healthz") == 200


def test_a_passed_descriptor_that_is_not_a_listening_socket_fails_the_start(ops_daemon: OpsDaemonFactory) -> None:
    """A datagram socket (ListenDatagram= by mistake) is refused: exit 1 and one clear line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        d = ops_daemon(prefix=activation_wrapper(udp.fileno()), pass_fds=(udp.fileno(),))
        d.launch()
        assert d.wait_exit() == 1
    assert any("not a listening stream socket" in line for line in d.stderr_lines), d.stderr_lines


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process has in LISTEN state (from /proc: its socket inodes
    matched against /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: TCP_LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


# -- the module's own rules ----------------------------------------------------


def test_listen_fds_ignores_another_pid_and_leaves_the_environment() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert listen_fds(env) == []
    assert env == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert listen_fds({}) == []


def test_listen_fds_rejects_a_bad_count_and_clears_the_variables() -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "zero", "LISTEN_FDNAMES": "http"}
    with pytest.raises(SocketActivationError, match="LISTEN_FDS"):
        listen_fds(env)
    assert env == {}  # never passed on to the commands the agent runs


def test_without_keys_only_loopback_sockets_may_be_served() -> None:
    """The rule config.py applies to server.host holds for passed-in sockets.
    (The public socket is bound, never listening: nothing can reach it.)"""
    with socket.socket() as public, socket.socket() as loopback:
        public.bind(("0.0.0.0", 0))
        loopback.bind(("127.0.0.1", 0))
        check_exposure([loopback], keys_configured=False)
        check_exposure([public], keys_configured=True)
        with pytest.raises(SocketActivationError, match="without API keys"):
            check_exposure([loopback, public], keys_configured=False)
        assert describe(loopback).startswith("127.0.0.1:")
        assert tcp_port([loopback]) == loopback.getsockname()[1]
