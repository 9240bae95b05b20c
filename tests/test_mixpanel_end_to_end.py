"""An app instrumented with Mixpanel drives a journey: the official `mixpanel` Python library
sends to the whole system (the API on loopback with its relay, a worker sending email to a real
SMTP server, a real Temporal dev server), and the abandoned-cart journey of the Segment
end-to-end test enters on a Mixpanel event and delivers."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from mixpanel import Consumer, Mixpanel
from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.receivers import SmtpReceiver
from tests.system import WRITE_KEY, running_system
from tests.test_end_to_end import cart_journey
from tests.test_engagement_end_to_end import mail_for


async def test_a_journey_enters_on_a_mixpanel_event_and_delivers(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    journey = f"mp-cart-{uuid.uuid4().hex[:6]}"
    with SmtpReceiver() as smtp:
        async with running_system(
            dev_server, store, executor, smtp_url=smtp.url, email_from="Shop <shop@example.com>"
        ) as system:
            assert await system.publish(cart_journey(journey)) == 1
            api = f"{system.api_url}/mixpanel"
            consumer = Consumer(
                events_url=f"{api}/track", people_url=f"{api}/engage", retry_limit=0
            )
            mp = Mixpanel(WRITE_KEY, consumer=consumer)

            def instrumented_app() -> None:
                # A visitor browses, signs in as ada, gets a profile, adds to the cart; and
                # someone adds nothing.
                mp.track("$device:v1", "Viewed Product", {"product": "lamp"})
                mp.track("ada", "$identify", {"$anon_distinct_id": "$device:v1"})
                mp.people_set("ada", {"$email": "ada@example.com", "$first_name": "Ada"})
                mp.track("ada", "Added to Cart", {"total": 40, "product": "lamp"})
                mp.people_set("bo", {"$email": "bo@example.com"})
                mp.track("bo", "Added to Cart", {"total": 0, "product": "air"})

            # The library is synchronous, and the API serves on this event loop.
            await asyncio.to_thread(instrumented_app)

            mail = await mail_for(smtp, "ada@example.com")
            assert mail.message["Subject"] == "Hi Ada"
            assert mail.text() == "Your lamp is waiting\n"
            assert (await system.outcome(journey, "ada")).path == ["wait_checkout", "nudge"]

            user = await system.user("ada")
            assert user["traits"] == {"email": "ada@example.com", "first_name": "Ada"}
            [delivery] = user["deliveries"]
            assert (delivery["channel"], delivery["status"]) == ("email", "sent")
            events = [(e.type, e.name) for e in store.events_for_user("ada", newest_first=False)]
            assert events == [
                ("track", "Viewed Product"),
                ("identify", None),
                ("track", "Added to Cart"),
            ]
            # Bo's cart was empty: once routed, the entry's `where` kept him out.
            async with asyncio.timeout(30):
                while store.unrouted_count():
                    await asyncio.sleep(0.05)
            assert (await system.user("bo"))["journeys"] == []
            assert all("bo@example.com" not in m.recipients for m in smtp.messages)
