"""Cost of the outbound rule per call: lms_plugin.outbound.request vs a bare requests.get.

Both fetch a small JSON answer from a loopback server, a new connection each time (as
``requests.get`` does). Run: ``.venv/bin/python bench/outbound_overhead.py [N]``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from lms_plugin import outbound


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"keys": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main(n: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    policy = outbound.policy_for(["127.0.0.1"])
    calls = {"requests.get": lambda: requests.get(url, timeout=5),
             "outbound.request": lambda: outbound.request("GET", url, policy)}
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(5):  # alternate rounds so a busy machine hurts both alike
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(n):
                call()
            results[name].append((time.perf_counter() - started) / n * 1000)
    for name, rounds in results.items():
        print(f"{name:18s} median {statistics.median(rounds):.3f} ms/call "
              f"(rounds: {', '.join(f'{r:.3f}' for r in rounds)})")
    server.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
