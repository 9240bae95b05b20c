"""The inputs of the bare-SDK baselines (`bench.bare`), in a module of their own so that the
workflow sandbox passes them through as it passes `journeys.contracts` through for the
interpreter: a pydantic model defined in a sandboxed module is built again for every run, a cost
the interpreter does not pay and a hand-written workflow need not either."""

from __future__ import annotations

from pydantic import BaseModel


class FiveStepInput(BaseModel):
    """The user, the event to wait for, the delay and the webhook both messages go to."""

    journey_id: str
    user_id: str
    wait_for: str
    delay_seconds: float
    webhook_url: str


class EntryInput(BaseModel):
    """The user and the webhook to call, with the body the journey's message sends."""

    journey_id: str
    user_id: str
    webhook_url: str
    body: dict[str, str]
