"""The demo storefront of `journeys up`: `examples/web/` served on loopback, on a port of its own
so that its pages are a real cross-origin client of the API, as a shop's site would be.

It adds `/config.js` (the API URL and the write key, which the pages read) and sends every
answer with a strict Content-Security-Policy that names the API origin and allows nothing
inline, so the browser SDK is shown working where shops that lock their pages down would use
it. A threaded `http.server` in the `up` process: it only ever serves a developer's browser.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

STOREFRONT = Path(__file__).resolve().parents[1] / "examples" / "web"
"""The storefront's files, in a source checkout (where `journeys up` runs)."""


def content_security_policy(api_url: str) -> str:
    """Scripts and styles from the storefront and the API only, nothing inline; connections
    (events, the inbox and its stream) to the API only."""
    return (
        f"default-src 'self'; script-src 'self' {api_url}; style-src 'self' {api_url}; "
        f"connect-src {api_url}; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "object-src 'none'; frame-ancestors 'none'"
    )


def config_script(api_url: str, write_key: str) -> bytes:
    """`/config.js`: what the storefront's pages need to reach the API."""
    config = json.dumps({"apiUrl": api_url, "writeKey": write_key})
    return f"window.JOURNEYS_CONFIG = {config};\n".encode()


class _Handler(SimpleHTTPRequestHandler):
    """Static files from the storefront's folder, plus `/config.js`, with the policy."""

    def __init__(self, *args: Any, shop: Storefront, **kwargs: Any) -> None:
        self.shop = shop
        super().__init__(*args, directory=str(shop.root), **kwargs)

    def do_GET(self) -> None:
        """Serve `/config.js` from memory, everything else from the folder."""
        if self.path.split("?", 1)[0] != "/config.js":
            super().do_GET()
            return
        body = config_script(self.shop.api_url, self.shop.write_key)
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        """Every answer: the policy, and no caching (the files change while developing)."""
        self.send_header("Content-Security-Policy", content_security_policy(self.shop.api_url))
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """To the storefront's log, not to the terminal that shows the stack's progress."""
        if self.shop.log is not None:
            self.shop.log.write(f"{self.address_string()} {format % args}\n")
            self.shop.log.flush()


class Storefront:
    """`examples/web/` on `host:port` until `stop`; the answers name `api_url`."""

    def __init__(
        self,
        port: int,
        api_url: str,
        write_key: str,
        *,
        host: str = "127.0.0.1",
        root: Path = STOREFRONT,
        log_path: Path | None = None,
    ) -> None:
        self.root = root
        self.api_url = api_url.rstrip("/")
        self.write_key = write_key
        self._server = ThreadingHTTPServer((host, port), partial(_Handler, shop=self))
        self.log: TextIO | None = None
        """Where requests are logged (nowhere without `log_path`)."""
        if log_path is not None:
            self.log = log_path.open("a", encoding="utf-8")
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="journeys-storefront", daemon=True
        )

    @property
    def url(self) -> str:
        """Where the storefront answers."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def __enter__(self) -> Storefront:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, free the port and close the log."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        if self.log is not None:
            self.log.close()
