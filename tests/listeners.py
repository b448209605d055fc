"""A process that holds sockets open for tests, run inside a network namespace if asked.

    python -m tests.listeners tcp:10.1.0.1:6443 tcp6:[::]:10250 udp:0.0.0.0:6081 ...

Prints "ready" once every socket is bound, then waits until killed. Accepted TCP
connections are closed at once.
"""

from __future__ import annotations

import selectors
import socket
import sys


def open_socket(spec: str) -> socket.socket:
    kind, rest = spec.split(":", 1)
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if kind == "tcp6":
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    elif kind == "udp6":
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    else:
        sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    if kind.startswith("tcp"):
        sock.listen(1024)
    return sock


def main(specs: list[str]) -> None:
    selector = selectors.DefaultSelector()
    held = [open_socket(spec) for spec in specs]  # referenced: UDP sockets stay bound
    for sock in held:
        if sock.type == socket.SOCK_STREAM:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            try:
                conn, _ = listener.accept()
                conn.close()
            except BlockingIOError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
