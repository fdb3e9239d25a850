"""A loopback proxy in front of a Couchbase-protocol server's KV ports, that a test can cut.

A plain TCP forwarder is not enough: the SDK bootstraps through it, then reads the cluster map
and connects to each node's own KV port directly. So this proxy understands the memcached
binary framing just enough to rewrite ``"kv":PORT`` in every packet the server sends (cluster
maps arrive in responses and in server-pushed notifications) to a proxy port of its own.
``cut()`` drops every connection and refuses new ones until ``restore()``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from urllib.parse import urlsplit

_KV = re.compile(rb'"kv":(\d+)')
_HEADER = 24


class KvProxy:
    """Proxies every KV port of the cluster behind ``url`` (``couchbase://h:p,h:p``)."""

    def __init__(self, url: str) -> None:
        self._lock = threading.Lock()
        self._ports: dict[int, int] = {}  # real port -> proxy port
        self._listeners: list[socket.socket] = []
        self._conns: set[socket.socket] = set()
        self._down = threading.Event()
        self._closed = False
        hosts = urlsplit(url).netloc.split(",")
        first = [self._proxy_port(int(h.rsplit(":", 1)[1])) for h in hosts]
        self.url = "couchbase://" + ",".join(f"127.0.0.1:{p}" for p in first)

    def _proxy_port(self, real: int) -> int:
        with self._lock:
            if real in self._ports:
                return self._ports[real]
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            self._listeners.append(listener)
            port = self._ports[real] = listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener, real), daemon=True).start()
        return port

    def _accept(self, listener: socket.socket, real: int) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", real), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._frames, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _frames(self, src: socket.socket, dst: socket.socket) -> None:
        """Server to client, packet by packet, with cluster-map ports rewritten."""
        buf = b""
        try:
            while data := src.recv(65536):
                buf += data
                out = []
                while len(buf) >= _HEADER:
                    total = _HEADER + struct.unpack_from(">I", buf, 8)[0]
                    if len(buf) < total:
                        break
                    out.append(self._rewrite(buf[:total]))
                    buf = buf[total:]
                if out:
                    dst.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _rewrite(self, packet: bytes) -> bytes:
        body = packet[_HEADER:]
        if packet[5] & 0x02 or b'"kv":' not in body:  # snappy-compressed, or no cluster map
            return packet
        body = _KV.sub(lambda m: b'"kv":%d' % self._proxy_port(int(m.group(1))), body)
        header = bytearray(packet[:_HEADER])
        struct.pack_into(">I", header, 8, len(body))
        return bytes(header) + body

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._conns.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        """An outage: every connection drops and new ones are refused."""
        self._down.set()
        with self._lock:
            conns = list(self._conns)
        self._drop(*conns)

    def restore(self) -> None:
        """The server is reachable again."""
        self._down.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        for listener in self._listeners:
            listener.close()
