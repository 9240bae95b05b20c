"""The isolated store a simulation runs against: a SQLite file of its own in a temporary
folder, seeded with what the run reads (the journey, the user, the workspace's segments,
templates and settings), and recording the run's steps as the run reports them.

Nothing the simulated run does reaches the real store: no delivery, no enrollment, no event,
so nothing shows in real users' pages or in stats.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import threading
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from journeys.model import ExperimentNode, Journey
from journeys.store import Store

RATE_LIMITS = "rate_limits"
_TEMPLATE_LOCK = threading.Lock()
_templates: dict[str, Path] = {}
"""The migrated template file, once made."""


@dataclass(frozen=True)
class Workspace:
    """What a simulated run reads of the workspace: segments, templates and settings."""

    segments: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """(id, name, condition) of each segment."""
    templates: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """(id, channel, content) of each template."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The stored workspace settings by key (frequency caps, time zone, holdout...)."""
    winners: dict[str, str] = field(default_factory=dict)
    """The variant each experiment node of the journey has picked as its winner, if any."""

    @classmethod
    def of(cls, store: Store, journey: Journey | None = None) -> Workspace:
        """A copy of the real store's segments, templates and settings, and of the winners
        the journey's experiments picked. Channel rate limits are left out: they share a
        channel among all users, and a simulated user has it to themselves."""
        settings = {k: v for k, v in store.get_settings().items() if k != RATE_LIMITS}
        winners = {}
        for node_id, node in (journey.nodes if journey is not None else {}).items():
            if isinstance(node, ExperimentNode) and journey is not None:
                winner = store.experiment_decision(journey.id, node_id).winner
                if winner is not None:
                    winners[node_id] = winner
        return cls(
            segments=tuple((s.id, s.name, s.condition) for s in store.list_segments()),
            templates=tuple((t.id, t.channel, t.content) for t in store.list_templates()),
            settings=settings,
            winners=winners,
        )


class ScratchStore(Store):
    """A store in a folder of its own, deleted with it; the engine sets its `clock`, so
    frequency caps count a message when it went in simulated time, not when the simulation
    ran."""

    def __init__(self, url: str, folder: Path) -> None:
        super().__init__(url)
        self._folder = folder

    def close(self) -> None:
        """Close the database and delete its folder."""
        super().close()
        shutil.rmtree(self._folder, ignore_errors=True)


def _migrated_template() -> Path:
    """A SQLite file at the newest migration, made once per process (and deleted when it
    exits): copying it is far quicker than migrating a new database for every simulation."""
    with _TEMPLATE_LOCK:
        made = _templates.get("head")
        if made is None or not made.exists():
            folder = Path(tempfile.mkdtemp(prefix="journeys-simulation-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)  # not left behind
            made = folder / "template.db"
            Store(f"sqlite:///{made}").close()
            with closing(sqlite3.connect(made)) as connection:  # fold the WAL into the file
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _templates["head"] = made
        return made


def scratch_store(
    journey: Journey, user_id: str, traits: dict[str, Any], workspace: Workspace
) -> ScratchStore:
    """A new isolated store holding the journey (live), the user and the workspace, in a
    folder of its own that closing the store deletes."""
    folder = Path(tempfile.mkdtemp(prefix="journeys-simulation-"))
    path = folder / "simulation.db"
    shutil.copyfile(_migrated_template(), path)
    store = ScratchStore(f"sqlite:///{path}", folder)
    try:
        for segment_id, name, condition in workspace.segments:
            store.put_segment(segment_id, name, condition)
        for template_id, channel, content in workspace.templates:
            store.put_template(template_id, channel, content)
        if workspace.settings:
            store.put_settings(workspace.settings)
        store.update_traits(user_id, traits, [])
        store.save_draft(journey.id, journey.model_dump(mode="json", by_alias=True))
        store.publish(journey.id)
        for node_id, winner in workspace.winners.items():
            store.record_experiment_look(
                journey.id, node_id, after_looks=0, looks=1, winner=winner, p_value=None
            )
    except BaseException:
        store.close()
        raise
    return store
