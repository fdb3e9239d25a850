"""A host of its own for one process: a network namespace whose only way to the broker is a
veth link that a test can cut for real.

The broker listens on, and advertises, ``127.0.0.1:PORT``. A process in the namespace reaches
that same address through two plain TCP forwarders (this module, run as a script) and the
link between them::

    namespace:  process -> 127.0.0.1:PORT (forwarder) --veth--+
    host:                                                      +--> 10.231.X.1:P (forwarder)
                                                                    -> 127.0.0.1:PORT (broker)

:meth:`Isolated.cut` takes the host's end of the link down. The namespace's end then has no
carrier but keeps its route (``linkdown``), so every packet the process sends is dropped by
the kernel and nothing comes back: the silence of a real partition (no reset, no refusal),
with every TCP connection left open on both sides. :meth:`Isolated.heal` brings the link up
again; the connections that survived carry on. Nothing else on the machine is affected: the
host's own clients still talk to the broker directly.

Needs root and ``ip`` (iproute2) with network namespaces, which the CI machine has; a missing
one fails the test that asked for it, never skips it::

    python netns.py forward LISTEN_HOST:PORT TARGET_HOST:PORT
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
SUBNET = "10.231"
"""Each namespace takes a /30 of 10.231.0.0/16: host end .1, namespace end .2."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: exit {result.returncode}: {result.stderr}")
    return result


def missing_prerequisite() -> str | None:
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing: apt-get install iproute2"
    return None


def _free_pair() -> tuple[str, str]:
    """The host's and the namespace's address in a /30 that no interface here uses yet."""
    used = _ip("-o", "-4", "addr").stdout
    for _ in range(100):
        index = random.randrange(16384)
        third, fourth = divmod(index, 64)
        host, inner = (f"{SUBNET}.{third}.{fourth * 4 + end}" for end in (1, 2))
        if f" {host}/" not in used and f" {inner}/" not in used:
            return host, inner
    raise RuntimeError(f"no free /30 in {SUBNET}.0.0/16")


@dataclass
class Isolated:
    """A network namespace whose processes reach the broker's ports only through one link."""

    ports: Sequence[int]
    name: str = field(default_factory=lambda: f"fes-{uuid.uuid4().hex[:8]}")
    _forwarders: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        tag = self.name.removeprefix("fes-")
        self.host_link, self.inner_link = f"fh{tag}", f"fn{tag}"
        self.host_address, self.inner_address = _free_pair()

    def start(self) -> Isolated:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
            _ip("link", "set", self.inner_link, "netns", self.name)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
            _ip("link", "set", self.host_link, "up")
            _ip("-n", self.name, "addr", "add", f"{self.inner_address}/30", "dev",
                self.inner_link)
            _ip("-n", self.name, "link", "set", self.inner_link, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
            for port in self.ports:
                # Host side: the link's address -> the broker's loopback port.
                self._forward([], f"{self.host_address}:{port}", f"127.0.0.1:{port}")
                # Inside: the address the broker advertises -> across the link.
                self._forward(["ip", "netns", "exec", self.name],
                              f"127.0.0.1:{port}", f"{self.host_address}:{port}")
        except BaseException:
            self.close()
            raise
        return self

    def _forward(self, prefix: list[str], listen: str, target: str) -> None:
        proc = subprocess.Popen([*prefix, sys.executable, str(HERE), "forward", listen, target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._forwarders.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "listening":
            proc.kill()
            raise RuntimeError(f"forwarder {listen} -> {target} did not start: {line!r} "
                               f"{proc.communicate()[1]}")

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """The partition: the link loses its carrier; packets are dropped, none refused."""
        _ip("link", "set", self.host_link, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_link, "up")

    def pids(self) -> list[int]:
        """Every process still running inside the namespace."""
        found = subprocess.run(["ip", "netns", "pids", self.name], text=True,
                               capture_output=True, check=False).stdout.split()
        return [int(pid) for pid in found]

    def close(self) -> None:
        for proc in self._forwarders:
            proc.kill()
            proc.communicate()
        for pid in self.pids():  # the namespace's own processes (a test's leftovers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(RuntimeError):
            _ip("link", "del", self.host_link)  # takes its peer with it
        with contextlib.suppress(RuntimeError):
            _ip("netns", "del", self.name)


# The forwarder -----------------------------------------------------------------------------


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:  # one side ended: end both, as the broker or the client would see it
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def forward(listen: str, target: str) -> int:
    server = socket.create_server(_address(listen), reuse_port=False, backlog=128)
    print("listening", flush=True)
    goal = _address(target)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, goal), daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "forward":
        sys.exit(forward(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
