"""Structured logs for `journeys api` and `journeys worker`: one JSON object per line on stderr.

    {"time": "2025-03-01T12:00:00.123Z", "level": "warning", "logger": "temporalio.activity",
     "message": "trait 'plan' not set: ...", "workflow_id": "journey:welcome:u1",
     "journey_id": "welcome", "user_id": "u1", "activity": "update_user"}

`journey_id`, `user_id` and `workflow_id` appear where known: passed in `extra=`, or taken from
what Temporal's `activity.logger` and `workflow.logger` attach (the run's workflow id, from
which a journey run's ids follow).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

IDS = ("journey_id", "user_id", "workflow_id")
"""Record attributes (`extra=`) copied into the line when present."""


def journey_ids(workflow_id: str) -> dict[str, str]:
    """The journey and user of a journey run's workflow id (`journey:{journey}:{user}`);
    nothing for other workflows (the segment sweep)."""
    kind, _, rest = workflow_id.partition(":")
    journey_id, _, user_id = rest.partition(":")
    if kind != "journey" or not journey_id or not user_id:
        return {}
    return {"journey_id": journey_id, "user_id": user_id}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time (UTC), level, logger, message, ids, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        at = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        temporal = getattr(record, "temporal_activity", None) or getattr(
            record, "temporal_workflow", None
        )
        if isinstance(temporal, dict) and temporal.get("workflow_id"):
            line["workflow_id"] = str(temporal["workflow_id"])
            line.update(journey_ids(line["workflow_id"]))
            for key, name in (("activity_type", "activity"), ("workflow_type", "workflow")):
                if temporal.get(key):
                    line[name] = temporal[key]
        for name in IDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO") -> None:
    """Send every log record (ours, Temporal's, the libraries') to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A line per provider request (httpx) or per store opened (Alembic's context set-up) is
    # noise at scale: deliveries are in the store, migrations are logged by journeys itself.
    for chatty in ("httpx", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # The run's ids are fields of the line: Temporal need not append them to the message too.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
