"""A TCP proxy in the test process that can stop forwarding on demand.

It stands for a network path that goes silent (a load balancer that lost its
state, a half-open connection): the sockets stay open, nothing arrives.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class SilentableProxy:
    """Forward 127.0.0.1:<port> to a Postgres server; ``silence()`` stops it.

    Use as a context manager; :meth:`uri` gives a connection string through
    the proxy for any database.
    """

    def __init__(self, server_uri: str) -> None:
        self._server = conninfo_to_dict(server_uri)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> SilentableProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed.set()
        self._forwarding.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def uri(self, dbname: str) -> str:
        """Connection string of ``dbname`` through the proxy."""
        server = {k: v for k, v in self._server.items() if k not in ("host", "port")}
        return make_conninfo(
            **{**server, "dbname": dbname, "host": "127.0.0.1", "port": self.port}
        )

    def silence(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def _upstream(self) -> socket.socket:
        host = str(self._server.get("host") or "localhost")
        port = int(self._server.get("port") or 5432)
        if host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(os.path.join(host, f".s.PGSQL.{port}"))
            return sock
        return socket.create_connection((host, port))

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = self._upstream()
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(0.05)
        except OSError:
            return
        while True:
            self._forwarding.wait()
            if self._closed.is_set():
                return
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                sink.close()
                return
            # This recv() may have begun before silence() and returned what
            # arrived after it: hold that back too, or a query sent after
            # silence() (and its answer) could still get through.
            self._forwarding.wait()
            if self._closed.is_set():
                return
            try:
                sink.sendall(data)
            except OSError:
                return
