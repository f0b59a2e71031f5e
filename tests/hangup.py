"""For fake servers that must not answer: hold the connection until the client gives up."""

from __future__ import annotations

import socket


def wait_until_client_leaves(conn: socket.socket, limit: float = 30.0) -> None:
    """Block until the peer closes or resets ``conn`` (the client hit its own deadline and
    hung up), at most ``limit`` seconds. A server that "never answers" then holds a request
    exactly as long as the client waits, instead of a guessed sleep that a loaded machine
    can outlast (or that wastes time on a fast one)."""
    conn.settimeout(limit)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
