"""The relay: routes stored events (the outbox) to users' runs in Temporal, beside the API."""
