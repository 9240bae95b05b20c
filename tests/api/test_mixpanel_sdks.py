"""Mixpanel's official libraries against the API served by uvicorn on loopback: the Python
`mixpanel` package, the Node `mixpanel` package, and `mixpanel-browser` in headless Chromium on
a page of another origin than the API (so its requests are cross-origin).

The Node packages are installed from npm into a session directory; without `npm` (or Chromium)
those tests skip, except under `JOURNEYS_TEST_STRICT=1` (CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest
from mixpanel import BufferedConsumer, Consumer, Mixpanel, MixpanelException
from playwright.sync_api import Request, Response, sync_playwright

from journeys.store import Store
from tests.api.helpers import WRITE_KEY
from tests.journey_designer.test_browser import CHROMIUM_ARGS, chromium

NODE_PACKAGES = ("mixpanel@0.24.0", "mixpanel-browser@2.83.0")
"""Pinned: the versions whose requests these tests were written against."""
WAIT_S = 20


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("JOURNEYS_TEST_STRICT") == "1":
        pytest.fail(f"{why}, and JOURNEYS_TEST_STRICT=1 forbids skipping")
    pytest.skip(why)


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`NODE_PACKAGES` installed from npm into a directory of the session's own."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _unavailable("node and npm are needed for Mixpanel's JavaScript libraries")
    root = tmp_path_factory.mktemp("mixpanel-node")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), *NODE_PACKAGES],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root / "node_modules"


def wait_for(check: Callable[[], bool], what: str) -> None:
    """Poll `check` until it holds (the libraries send in the background)."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.05)


Named = tuple[str, str | None]


def names(store: Store, user_id: str) -> list[Named]:
    return [(e.type, e.name) for e in store.events_for_user(user_id, newest_first=False)]


def traits(store: Store, user_id: str) -> dict[str, Any]:
    user = store.get_user(user_id)
    return {} if user is None else dict(user.traits)


# --- Python ----------------------------------------------------------------------------------


def test_the_python_library_tracks_sets_traits_and_merges(served: str, store: Store) -> None:
    api = f"{served}/mixpanel"
    urls = {"events_url": f"{api}/track", "people_url": f"{api}/engage"}
    consumer = Consumer(**urls, import_url=f"{api}/import", retry_limit=0)
    mp = Mixpanel(WRITE_KEY, consumer=consumer)
    mp.track("$device:d1", "Viewed Product", {"sku": "TEE"})
    # The server-side identify of Mixpanel's docs. (The library's own `alias()` always posts to
    # api.mixpanel.com, whatever the consumer: `$create_alias` is sent through `track` below.)
    mp.track("ada", "$identify", {"$anon_distinct_id": "$device:d1"})
    mp.track("guest-1", "Browsed")
    mp.track("guest-1", "$create_alias", {"alias": "ada"})
    mp.people_set("ada", {"$email": "ada@example.com", "$first_name": "Ada", "plan": "free"})
    mp.people_set_once("ada", {"plan": "pro", "$created": "2025-01-01"})
    mp.people_unset("ada", ["plan"])
    mp.people_increment("ada", {"logins": 2})
    mp.track("ada", "Added to Cart", {"total": 40, "product": "lamp"})
    mp.import_data(None, "ada", "Old Order", 1_600_000_000, api_secret=WRITE_KEY)
    mp.merge(None, "ada", "guest-2", api_secret=WRITE_KEY)

    buffered = BufferedConsumer(max_size=10, **urls, retry_limit=0)
    batched = Mixpanel(WRITE_KEY, consumer=buffered)
    for n in range(3):
        batched.track("bo", "Viewed", {"n": n})
    batched.people_set("bo", {"$name": "Bo"})
    buffered.flush()

    assert names(store, "ada") == [
        ("track", "Old Order"),
        ("track", "Viewed Product"),
        ("track", "Browsed"),
        ("identify", None),
        ("identify", None),
        ("identify", None),
        ("identify", None),
        ("track", "Added to Cart"),
    ]
    assert traits(store, "ada") == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "created_at": "2025-01-01",
        "logins": 2,
    }
    [old] = store.events_for_user("ada", name="Old Order")
    assert old.timestamp == datetime.fromtimestamp(1_600_000_000, UTC)
    assert store.get_user("anon:d1") is None
    assert store.get_user("guest-1") is None
    assert [e.properties["n"] for e in store.events_for_user("bo", name="Viewed")] == [2, 1, 0]
    assert traits(store, "bo") == {"name": "Bo"}

    with pytest.raises(MixpanelException, match="invalid token"):
        Mixpanel("another-project", consumer=consumer).track("ada", "Sneaked In")
    assert store.events_for_user("ada", name="Sneaked In") == []


# --- Node ------------------------------------------------------------------------------------

NODE_SCRIPT = """
const Mixpanel = require("mixpanel");
const [host, token] = process.argv.slice(2);
const config = {protocol: "http", host, path: "/mixpanel", key: "unused"};
const mp = Mixpanel.init(token, config);
const other = Mixpanel.init("another-project", {...config, verbose: true});
const MARCH_12 = 1741780800000;
const batched = n => ({event: "Batched", properties: {distinct_id: "cy", n, note: "+/+/"}});
const steps = [
  cb => mp.track("Viewed Product", {distinct_id: "$device:n1", sku: "MUG"}, cb),
  cb => mp.alias("$device:n1", "cy", cb),
  cb => mp.people.set("cy", {$email: "cy@example.com", $first_name: "Cy"}, cb),
  cb => mp.people.set_once("cy", "plan", "free", cb),
  cb => mp.people.increment("cy", "logins", 3, cb),
  cb => mp.people.union("cy", {tags: ["a", "b"]}, cb),
  cb => mp.track("Added to Cart", {distinct_id: "cy", total: 25, time: new Date(MARCH_12)}, cb),
  cb => mp.import("Old Order", new Date(1600000000000), {distinct_id: "cy"}, cb),
  cb => mp.track_batch([1, 2, 3].map(n => batched(n)), cb),
  cb => other.track("Sneaked In", {distinct_id: "cy"}, cb),
];
const errors = [];
(function next(i) {
  if (i === steps.length) { console.log(JSON.stringify(errors)); return; }
  steps[i](error => {
    const list = Array.isArray(error) ? error : (error ? [error] : []);
    errors.push(list.map(String));
    next(i + 1);
  });
})(0);
"""


def test_the_node_library_tracks_sets_traits_and_aliases(
    served: str,
    store: Store,
    node_modules: Path,
    tmp_path: Path,
) -> None:
    script = tmp_path / "send.js"
    script.write_text(NODE_SCRIPT)
    host = served.removeprefix("http://")
    run = subprocess.run(
        ["node", str(script), host, WRITE_KEY],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    errors = json.loads(run.stdout.strip().splitlines()[-1])
    assert errors[:-1] == [[]] * 9, errors
    [refusal] = errors[-1]
    assert "invalid token" in refusal

    assert names(store, "cy") == [
        ("track", "Old Order"),
        ("track", "Added to Cart"),
        ("track", "Viewed Product"),
        ("identify", None),
        ("identify", None),
        ("identify", None),
        ("identify", None),
        ("track", "Batched"),
        ("track", "Batched"),
        ("track", "Batched"),
    ]
    assert traits(store, "cy") == {
        "email": "cy@example.com",
        "first_name": "Cy",
        "plan": "free",
        "logins": 3,
        "tags": ["a", "b"],
    }
    [cart] = store.events_for_user("cy", name="Added to Cart")
    assert cart.timestamp == datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
    batched = store.events_for_user("cy", name="Batched", newest_first=False)
    assert [(e.properties["n"], e.properties["note"]) for e in batched] == [
        (1, "+/+/"),
        (2, "+/+/"),
        (3, "+/+/"),
    ]
    assert store.get_user("anon:n1") is None


# --- the browser -----------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>Checkout</title><script src="mixpanel.umd.js"></script></head>
<body><button id="pay">Pay</button><script>
mixpanel.init("{token}", {{
  api_host: "{api}/mixpanel", track_pageview: true, batch_requests: {batch},
  batch_flush_interval_ms: 100, api_payload_format: "{format}",
}});
</script></body></html>
"""


@pytest.fixture
def page_origin(node_modules: Path, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A loopback web server of its own (another origin than the API) serving
    mixpanel-browser; calling it with a page's HTML gives that page's URL."""
    root = tmp_path / "site"
    root.mkdir()
    bundle = node_modules / "mixpanel-browser" / "dist" / "mixpanel.umd.js"
    shutil.copyfile(bundle, root / "mixpanel.umd.js")
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages = iter(range(1_000))

    def publish(html: str) -> str:
        name = f"page-{next(pages)}.html"
        (root / name).write_text(html)
        return f"http://127.0.0.1:{server.server_address[1]}/{name}"

    try:
        yield publish
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.mark.parametrize(
    "mode",
    [
        # Batches (JSON lists) as base64; identify() joins the visitor to the user.
        {"batch": True, "format": "base64", "joins_by": "identify"},
        # One record per request as JSON; alias() joins them.
        {"batch": False, "format": "json", "joins_by": "alias"},
    ],
)
def test_mixpanel_browser_in_chromium_sends_across_origins(
    served: str,
    store: Store,
    page_origin: Callable[[str], str],
    mode: dict[str, Any],
) -> None:
    executable = chromium()
    batch, joins_by = json.dumps(mode["batch"]), mode["joins_by"]
    html = PAGE.format(token=WRITE_KEY, api=served, batch=batch, format=mode["format"])
    url = page_origin(html)
    refused: list[str] = []

    def failed(request: Request) -> None:
        refused.append(f"{request.method} {request.url}: {request.failure}")

    def answered(response: Response) -> None:
        if response.url.startswith(served) and response.status != 200:
            refused.append(f"{response.request.method} {response.url}: {response.status}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("requestfailed", failed)
            page.on("response", answered)
            page.goto(url)
            page.wait_for_function("window.mixpanel && window.mixpanel.__loaded")
            device = page.evaluate("mixpanel.get_property('$device_id')")
            page.evaluate("mixpanel.track('Viewed Product', {sku: 'HAT'})")
            page.evaluate(f"mixpanel.{joins_by}('dee')")
            page.evaluate(
                "mixpanel.people.set({$email: 'dee@example.com', $first_name: 'Dee'});"
                "mixpanel.track('Added to Cart', {total: 12});"
            )
            wait_for(
                lambda: (
                    ("track", "Added to Cart") in names(store, "dee")
                    and "email" in traits(store, "dee")
                ),
                "the browser's events and traits",
            )
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()

    assert refused == []
    # The visitor's page view and event, merged in; the first-touch referrer the library sets
    # once on identifying, and people.set; the identified user's event.
    expected: list[Named] = [("page", "Checkout"), ("track", "Viewed Product")]
    expected += [("identify", None), ("identify", None), ("track", "Added to Cart")]
    assert sorted(names(store, "dee"), key=str) == sorted(expected, key=str)
    assert traits(store, "dee") == {
        "email": "dee@example.com",
        "first_name": "Dee",
        "initial_referrer": "$direct",
        "initial_referring_domain": "$direct",
    }
    assert store.get_user(f"anon:{device}") is None
    [page_view] = store.events_for_user("dee", name="Checkout")
    assert page_view.properties["title"] == "Checkout"
    assert page_view.properties["url"] == url
