"""A TCP proxy between a client and a broker that can cut the network the way a failing
switch, Wi-Fi or NAT does: ``freeze()`` stops forwarding on the open connections without closing
them (no FIN, no RST: a half-open connection, silent both ways), while new connections go
through again. Only keepalive can tell the client."""

from __future__ import annotations

import select
import socket
import threading


class FreezingProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._frozen: list[threading.Event] = []
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            frozen = threading.Event()
            self._frozen.append(frozen)
            self._sockets += [client, upstream]
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, frozen), daemon=True).start()

    def _pump(self, one: socket.socket, two: socket.socket, frozen: threading.Event) -> None:
        peers = {one: two, two: one}
        while not self._stopping.is_set():
            if frozen.is_set():
                self._stopping.wait(0.2)  # hold both ends open, read and send nothing
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return self._close(one, two)
                    if not frozen.is_set():
                        peers[sock].sendall(data)
            except OSError:
                return self._close(one, two)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            sock.close()

    def freeze(self) -> None:
        """Every connection open now goes silent, both ways, and stays open."""
        for frozen in self._frozen:
            frozen.set()

    def close(self) -> None:
        self._stopping.set()
        self.listener.close()
        for sock in self._sockets:
            sock.close()
