"""The harness of the browser SDK's tests: headless Chromium (through async Playwright) on pages
served from a loopback origin of their own, under a strict Content-Security-Policy, with a
watch on what the page shows (every `[data-journeys-message]` element, when it appeared), what
the console says and what the policy refused.

Chromium comes from the system as in the designer's browser test: without it these tests skip,
except under `JOURNEYS_TEST_STRICT=1`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Page, async_playwright

from cli.shop import Storefront
from tests.journey_designer.test_browser import ARTIFACTS, CHROMIUM_ARGS, chromium
from tests.system import WRITE_KEY

T = TypeVar("T")

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
"""A desktop browser's: the click tracker counts a headless user agent as a machine."""
TIMEOUT_MS = 20_000

WATCH = """
window.__watch = {appeared: {}, violations: []};
const seen = new WeakSet();
document.addEventListener('securitypolicyviolation', (e) => {
  window.__watch.violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== Node.ELEMENT_NODE) continue;
      for (const element of [node, ...node.querySelectorAll('[data-journeys-message]')]) {
        const id = element.getAttribute('data-journeys-message');
        if (!id || seen.has(element)) continue;
        seen.add(element);
        (window.__watch.appeared[id] = window.__watch.appeared[id] || []).push(Date.now());
      }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""
"""Injected before any script of every page: when each message element was added to the
document (epoch ms, the clock the store's times are on), and every Content-Security-Policy
violation."""

TEST_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>SDK test page</title>
  <link rel="icon" href="data:,">
  <script src="{api}/sdk/journeys.js"></script>
</head>
<body>
  <h1>A page of a shop</h1>
  <button id="focus-me" type="button">Something to focus</button>
  <p>The tests call journeys.init themselves, with the options each needs.</p>
</body>
</html>
"""
NEXT_PAGE = """<!doctype html>
<html lang="en">
<head><title>Next</title><link rel="icon" href="data:,"></head>
<body>next</body>
</html>
"""


@dataclass
class Browsing:
    """A page in a fresh browser context, and what its console said."""

    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors so far."""
        return [message.text for message in self.console if message.type == "error"]

    def warnings(self) -> list[str]:
        """Console warnings so far."""
        return [message.text for message in self.console if message.type == "warning"]

    async def appeared(self) -> dict[int, list[int]]:
        """Per delivery id, when (epoch ms) each element for it was added to this document."""
        found: dict[str, list[int]] = await self.page.evaluate("window.__watch.appeared")
        return {int(key): times for key, times in found.items()}

    async def violations(self) -> list[str]:
        """The policy's refusals in this document."""
        found: list[str] = await self.page.evaluate("window.__watch.violations")
        return found

    async def init(self, api_url: str, **options: Any) -> None:
        """`journeys.init` with the test credentials and `options`."""
        await self.page.evaluate(
            "options => journeys.init(options)",
            {"apiUrl": api_url, "writeKey": WRITE_KEY, **options},
        )

    async def screenshot(self, name: str) -> None:
        """Save the page as `test-artifacts/<name>`."""
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / name))


@asynccontextmanager
async def browsing(**context_options: Any) -> AsyncIterator[Browsing]:
    """A new page of headless Chromium with a desktop user agent and the watch installed."""
    executable = chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(user_agent=USER_AGENT, **context_options)
            await context.add_init_script(WATCH)
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            watching = Browsing(page)

            def heard(message: ConsoleMessage) -> None:
                watching.console.append(message)

            page.on("console", heard)
            yield watching
        finally:
            await browser.close()


@contextmanager
def serving(root: Path, api_url: str) -> Iterator[str]:
    """`root` served on a loopback port of its own with the storefront's strict policy
    (scripts, styles and connections: this origin and the API's only); its URL."""
    with Storefront(0, api_url, WRITE_KEY, root=root) as site:
        yield site.url


@contextmanager
def sdk_site(root: Path, api_url: str) -> Iterator[str]:
    """A page that loads the SDK from the API (`/page.html`) and one to go to (`/next.html`),
    served as by `serving`; its URL."""
    (root / "page.html").write_text(TEST_PAGE.replace("{api}", api_url))
    (root / "next.html").write_text(NEXT_PAGE)
    with serving(root, api_url) as url:
        yield url


class Cable:
    """A TCP relay on loopback in front of the API that a test can cut: open connections drop
    and new ones are closed unanswered until it is joined again, as a browser sees a network
    that goes away (Chromium's offline emulation leaves open streams alone, and lets requests
    sent as a page unloads through)."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.connected = True
        self.refused: list[str] = []
        """The request line of each connection closed while cut ("POST /v1/batch HTTP/1.1")."""
        self.url = ""
        """Where the API answers through the cable (once entered)."""

    async def __aenter__(self) -> Cable:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection; close new ones until `join`."""
        self.connected = False
        for writer in list(self._open):
            writer.transport.abort()

    def join(self) -> None:
        """Relay new connections again."""
        self.connected = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.connected:
            with suppress(TimeoutError, ConnectionError):
                line = await asyncio.wait_for(reader.readline(), 2)
                self.refused.append(line.decode("latin-1").strip())
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._open |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}


async def eventually(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.05)
