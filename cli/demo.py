"""`journeys demo`: storefront traffic that makes the demo journeys run within a minute.

Two halves, kept apart so the first is easy to test:

- `plan_traffic` is pure and seeded: the same seed gives the same shoppers and the same events,
  each at an offset in seconds from the start. Every shopper follows a storefront funnel
  (identify, view products, add to cart, start checkout, complete the order) and stops at a
  step chosen by their persona, so orderings are always realistic.
- `run_demo` publishes the demo journeys (`cli/demo_journeys/`, with waits of seconds
  instead of hours), plays the traffic to `POST /v1/batch` in real time (timestamps are the
  moment of sending, as an SDK would set them), then watches deliveries land.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, TextIO
from urllib.parse import quote, urlsplit

from api_client import ApiClient, ApiError

DEMO_JOURNEYS = ("demo-abandoned-cart", "demo-browse-abandonment")
DEFAULT_SEED = 42
DEFAULT_WAIT = 40.0

Persona = Literal["browser", "cart_abandoner", "checkout_abandoner", "buyer"]
PERSONAS: tuple[tuple[Persona, int], ...] = (
    ("browser", 30),
    ("cart_abandoner", 35),
    ("checkout_abandoner", 10),
    ("buyer", 25),
)
"""Who stops where in the funnel, with their share of shoppers in percent."""

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken",
    "Frances", "Edsger", "Radia", "Tim", "Hedy", "Guido", "Sophie", "Yukihiro", "Anita",
    "Bjarne", "Shafi", "Donald", "Jean", "John", "Lynn",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov",
    "Thompson", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "van Rossum",
    "Wilson", "Matsumoto", "Borg", "Stroustrup", "Goldwasser", "Knuth", "Bartik", "Backus",
    "Conway",
)  # fmt: skip
TIMEZONES = (
    "America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London",
    "Europe/Berlin", "Europe/Paris", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo",
)  # fmt: skip
CATALOG: tuple[tuple[str, str, str, float], ...] = (
    ("sku-lamp-01", "Arc Desk Lamp", "Home", 49.0),
    ("sku-mug-02", "Stoneware Mug", "Kitchen", 14.5),
    ("sku-kbd-03", "Mechanical Keyboard", "Electronics", 129.0),
    ("sku-hp-04", "Noise-Cancelling Headphones", "Electronics", 249.0),
    ("sku-bag-05", "Canvas Weekender Bag", "Travel", 89.0),
    ("sku-tee-06", "Organic Cotton Tee", "Apparel", 24.0),
    ("sku-run-07", "Trail Running Shoes", "Apparel", 119.0),
    ("sku-pour-08", "Pour-Over Coffee Set", "Kitchen", 39.0),
    ("sku-chair-09", "Ergonomic Chair", "Home", 329.0),
    ("sku-book-10", "The Art of Journeys (paperback)", "Books", 19.99),
)
"""(product id, name, category, price)."""
SHOP = "https://shop.example.com"


@dataclass(frozen=True)
class Shopper:
    """A demo user: their profile traits and where they stop in the funnel."""

    user_id: str
    persona: Persona
    traits: dict[str, Any]

    @property
    def reachable_by(self) -> frozenset[str]:
        """The channels the user has an address for (email, push)."""
        channels = set()
        if "email" in self.traits:
            channels.add("email")
        if self.traits.get("push_tokens"):
            channels.add("push")
        return frozenset(channels)


@dataclass(frozen=True)
class DemoEvent:
    """One Segment message of the traffic, `at` seconds after the traffic starts."""

    at: float
    user_id: str
    type: Literal["identify", "track"]
    message_id: str
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)

    def to_segment(self, timestamp: datetime) -> dict[str, Any]:
        """The message as a Segment SDK sends it in a batch, stamped with `timestamp`."""
        message: dict[str, Any] = {
            "type": self.type,
            "userId": self.user_id,
            "messageId": self.message_id,
            "timestamp": timestamp.isoformat(),
            "context": {"library": {"name": "journeys-demo", "version": "1"}},
        }
        if self.type == "track":
            message["event"] = self.event
            message["properties"] = self.properties
        else:
            message["traits"] = self.traits
        return message


@dataclass(frozen=True)
class Traffic:
    """The planned shoppers and their events, in sending order."""

    shoppers: list[Shopper]
    events: list[DemoEvent]

    @property
    def duration(self) -> float:
        """Seconds from the first event to the last."""
        return self.events[-1].at if self.events else 0.0

    def expected_messages(self) -> Counter[str]:
        """Messages per channel the demo journeys should send for this traffic.

        Browsers get one browse-abandonment message (email, else push); cart abandoners get the
        cart email if they have an address, and the push if they have a token.
        """
        expected: Counter[str] = Counter()
        for shopper in self.shoppers:
            channels = shopper.reachable_by
            if shopper.persona == "browser" and channels:
                expected["email" if "email" in channels else "push"] += 1
            elif shopper.persona == "cart_abandoner":
                expected.update(channels)
        return expected


def _pick_persona(rng: random.Random) -> Persona:
    personas = [p for p, _ in PERSONAS]
    return rng.choices(personas, weights=[w for _, w in PERSONAS])[0]


def _traits(rng: random.Random, index: int, run: str) -> dict[str, Any]:
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = rng.choice(LAST_NAMES)
    traits: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "name": f"{first} {last}",
        "timezone": rng.choice(TIMEZONES),
        "plan": rng.choice(("free", "free", "plus", "pro")),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
    }
    # Most shoppers have an email address; some are only reachable on the app.
    if rng.random() < 0.85:
        handle = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
        traits["email"] = f"{handle}+{run}-{index}@example.com"
    if rng.random() < 0.5:
        traits["push_tokens"] = [f"fcm:{run}-{index}-{rng.getrandbits(32):08x}"]
    if rng.random() < 0.4:
        traits["phone"] = f"+1555{rng.randint(0, 9999999):07d}"
    return traits


def _product(index: int) -> dict[str, Any]:
    product_id, name, category, price = CATALOG[index]
    return {
        "product_id": product_id,
        "sku": product_id.upper(),
        "name": name,
        "category": category,
        "price": price,
        "currency": "USD",
        "url": f"{SHOP}/p/{product_id}",
        "image_url": f"{SHOP}/img/{product_id}.jpg",
    }


def _session(
    rng: random.Random, shopper: Shopper, start: float, run: str, number: int
) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """The shopper's track events as (offset, name, properties), following the funnel."""
    at = start
    viewed = rng.sample(range(len(CATALOG)), k=rng.randint(1, 4))
    for product in viewed:
        yield at, "Product Viewed", _product(product)
        at += rng.uniform(0.8, 3.0)
    if shopper.persona == "browser":
        return
    cart_id = f"cart-{run}-{number:03d}"
    cart: list[dict[str, Any]] = []
    # Shoppers add what they looked at, never something they did not see.
    for product in rng.sample(viewed, k=rng.randint(1, min(2, len(viewed)))):
        item = {**_product(product), "quantity": rng.choice((1, 1, 1, 2))}
        cart.append(item)
        total = round(sum(i["price"] * i["quantity"] for i in cart), 2)
        yield (
            at,
            "Added to Cart",
            {
                **item,
                "cart_id": cart_id,
                "total_price": total,
                "item_count": sum(i["quantity"] for i in cart),
                "first_item_name": cart[0]["name"],
                "cart_url": f"{SHOP}/cart/{cart_id}",
            },
        )
        at += rng.uniform(0.8, 3.0)
    if shopper.persona == "cart_abandoner":
        return
    total = round(sum(i["price"] * i["quantity"] for i in cart), 2)
    products = [
        {
            "product_id": i["product_id"],
            "name": i["name"],
            "price": i["price"],
            "quantity": i["quantity"],
        }
        for i in cart
    ]
    checkout_id = f"co-{run}-{number:03d}"
    yield (
        at,
        "Checkout Started",
        {
            "checkout_id": checkout_id,
            "cart_id": cart_id,
            "value": total,
            "currency": "USD",
            "products": products,
        },
    )
    if shopper.persona == "checkout_abandoner":
        return
    at += rng.uniform(1.5, 4.0)
    yield (
        at,
        "Order Completed",
        {
            "order_id": f"order-{run}-{number:03d}",
            "checkout_id": checkout_id,
            "total": total,
            "revenue": total,
            "currency": "USD",
            "products": products,
        },
    )


def plan_traffic(users: int, *, seed: int = DEFAULT_SEED, run: str = "demo") -> Traffic:
    """Shoppers and their events for `users` users, the same for the same seed and run.

    Sessions start spread over the first few seconds; within a session events follow the funnel
    a second or so apart. User ids, message ids and carts are prefixed with `run`, so every
    demo run has users of its own.
    """
    if users < 1:
        raise ValueError("the demo needs at least one user")
    rng = random.Random(seed)
    spread = min(10.0, users * 0.5)
    shoppers: list[Shopper] = []
    planned: list[tuple[float, int, DemoEvent]] = []

    def add(event: DemoEvent) -> None:
        planned.append((event.at, len(planned), event))

    for number in range(1, users + 1):
        shopper = Shopper(
            user_id=f"{run}-{number:03d}",
            persona=_pick_persona(rng),
            traits=_traits(rng, number - 1, run),
        )
        shoppers.append(shopper)
        start = round(rng.uniform(0.0, spread), 2)
        message = f"{run}-{number:03d}"
        # The shopper logs in first: the profile exists before any journey looks at it.
        add(DemoEvent(start, shopper.user_id, "identify", f"{message}-0", traits=shopper.traits))
        for step, (at, name, properties) in enumerate(
            _session(rng, shopper, start + 0.2, run, number), start=1
        ):
            add(
                DemoEvent(
                    round(at, 2),
                    shopper.user_id,
                    "track",
                    f"{message}-{step}",
                    event=name,
                    properties=properties,
                )
            )
    planned.sort(key=lambda item: (item[0], item[1]))
    return Traffic(shoppers=shoppers, events=[event for _, _, event in planned])


# --- sending ----------------------------------------------------------------------------------


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """`[#####     ]` for `done` of `total`."""
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + " " * (width - filled) + "]"


def load_demo_journeys() -> list[dict[str, Any]]:
    """The demo journey documents shipped in `cli/demo_journeys/`."""
    folder = resources.files("cli") / "demo_journeys"
    return [
        json.loads((folder / f"{journey_id}.json").read_text(encoding="utf-8"))
        for journey_id in DEMO_JOURNEYS
    ]


def send_traffic(
    client: ApiClient, traffic: Traffic, *, speed: float = 1.0, err: TextIO = sys.stderr
) -> None:
    """Send the events in real time (offsets divided by `speed`), showing progress on `err`."""
    last_event = {event.user_id: index for index, event in enumerate(traffic.events)}
    total_users = len(traffic.shoppers)
    started = time.monotonic()
    sent = 0
    while sent < len(traffic.events):
        elapsed = (time.monotonic() - started) * speed
        end = sent
        while end < len(traffic.events) and traffic.events[end].at <= elapsed:
            end += 1
        due = traffic.events[sent:end]
        if due:
            now = datetime.now(UTC)
            client.batch([event.to_segment(now) for event in due])
            sent += len(due)
            done = sum(1 for index in last_event.values() if index < sent)
            err.write(
                f"\r{progress_bar(done, total_users)} {done}/{total_users} users · "
                f"{sent}/{len(traffic.events)} events"
            )
            err.flush()
            continue
        next_at = traffic.events[sent].at / speed
        time.sleep(max(0.0, min(0.5, next_at - (time.monotonic() - started))))
    err.write("\n")
    err.flush()


def count_deliveries(client: ApiClient, user_ids: list[str]) -> Counter[str]:
    """Sent deliveries of the demo journeys to these users, per channel."""
    landed: Counter[str] = Counter()
    for user_id in user_ids:
        try:
            profile = client.user(user_id)
        except ApiError as error:
            if error.status == 404:  # not routed yet
                continue
            raise
        for delivery in profile.get("deliveries", []):
            if delivery.get("journey_id") in DEMO_JOURNEYS and delivery.get("status") == "sent":
                landed[str(delivery.get("channel"))] += 1
    return landed


def _by_channel(counts: Counter[str]) -> str:
    return ", ".join(f"{channel} {n}" for channel, n in sorted(counts.items())) or "none yet"


def watch_deliveries(
    client: ApiClient,
    traffic: Traffic,
    *,
    wait: float = DEFAULT_WAIT,
    err: TextIO = sys.stderr,
) -> Counter[str]:
    """Poll the users' deliveries for up to `wait` seconds, or until every expected one landed."""
    expected = sum(traffic.expected_messages().values())
    user_ids = [shopper.user_id for shopper in traffic.shoppers]
    deadline = time.monotonic() + wait
    while True:
        landed = count_deliveries(client, user_ids)
        left = deadline - time.monotonic()
        err.write(
            f"\r{progress_bar(sum(landed.values()), expected)} "
            f"{sum(landed.values())}/{expected} messages landed ({_by_channel(landed)}) · "
            f"{max(0, round(left))} s left   "
        )
        err.flush()
        if sum(landed.values()) >= expected or left <= 0:
            err.write("\n")
            err.flush()
            return landed
        time.sleep(min(2.0, max(0.0, left)))


def designer_url(api_url: str) -> str:
    """Where `journeys up` serves the designer: the API's host on the default designer port."""
    host = urlsplit(api_url).hostname or "localhost"
    return f"http://{host}:8501"


def run_demo(
    client: ApiClient,
    traffic: Traffic,
    *,
    temporal_ui_url: str,
    temporal_address: str,
    temporal_namespace: str = "default",
    speed: float = 1.0,
    wait: float = DEFAULT_WAIT,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> Counter[str]:
    """Publish the demo journeys, send the traffic, watch deliveries and print a summary."""
    for document in load_demo_journeys():
        client.put_journey(document)
        version = client.publish(document["id"])
        print(f"published {document['id']} v{version}", file=out, flush=True)
    personas = Counter(shopper.persona.replace("_", " ") for shopper in traffic.shoppers)
    mix = ", ".join(f"{n} {persona}s" for persona, n in sorted(personas.items()))
    print(
        f"sending {len(traffic.events)} events for {len(traffic.shoppers)} shoppers ({mix}) "
        f"over ~{traffic.duration / speed:.0f} s",
        file=out,
        flush=True,
    )
    send_traffic(client, traffic, speed=speed, err=err)
    expected = traffic.expected_messages()
    print(
        f"waiting up to {wait:.0f} s for {sum(expected.values())} messages "
        f"({_by_channel(expected)}): carts wait 20 s for checkout, browsing 15 s of quiet",
        file=out,
        flush=True,
    )
    landed = watch_deliveries(client, traffic, wait=wait, err=err)
    ui = temporal_ui_url.rstrip("/")
    query = quote("JourneyId='demo-abandoned-cart'", safe="")
    sample = traffic.shoppers[0].user_id
    print(
        f"\n{sum(landed.values())} of {sum(expected.values())} expected messages landed "
        f"({_by_channel(landed)}).\n"
        f"  designer          {designer_url(client.base_url)}\n"
        f"  Temporal UI       {ui}/namespaces/{temporal_namespace}/workflows?query={query}\n"
        f"  a user's journeys and deliveries:\n"
        f'    curl -H "Authorization: Bearer $JOURNEYS_ADMIN_TOKEN" '
        f"{client.base_url}/v1/users/{sample}\n"
        f"  who is where, from the Temporal CLI:\n"
        f"    temporal workflow list --address {temporal_address} "
        f"--query \"JourneyId='demo-abandoned-cart'\"",
        file=out,
        flush=True,
    )
    return landed
