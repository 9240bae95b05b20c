"""The app store: journeys and their versions, profiles, events, segments, templates,
deliveries, enrollments, broadcasts, settings, tokens, the audit log and the people who sign
in, as SQLModel tables behind one synchronous `Store`.

SQLite (embedded, the default) and PostgreSQL are supported; opening a store brings its schema
to the newest migration (`journeys.migrations`). Every public method is one short
transaction, so activities can call the store from a thread pool. Timestamps are aware UTC
datetimes in Python; columns hold naive UTC (`UTCDateTime`), which both databases compare
correctly.

Writes that must not happen twice (an event's `message_id`, a delivery's idempotency key, an
enrollment id) rely on unique constraints rather than on a look-up first, so two racing callers
cannot both win.

The tables are in `records`, the engine and sessions in `base`, and the methods in one module
per aggregate, which `Store` brings together.
"""

from __future__ import annotations

from journeys.store.access import AccessAggregate
from journeys.store.broadcasts import BroadcastsAggregate
from journeys.store.catalog import CatalogAggregate
from journeys.store.deliveries import DeliveriesAggregate
from journeys.store.enrollments import EnrollmentsAggregate
from journeys.store.events import EventsAggregate
from journeys.store.experiments import ExperimentsAggregate
from journeys.store.journeys import JourneysAggregate
from journeys.store.people import PeopleAggregate
from journeys.store.privacy import PrivacyAggregate, UserData
from journeys.store.profiles import ProfilesAggregate
from journeys.store.records import (
    DELIVERY_STATUSES,
    IN_APP,
    UNFINISHED,
    AuditRecord,
    BroadcastRecord,
    CapWindow,
    DeliveryRecord,
    DeliveryStatus,
    EnrollmentRecord,
    EntryAdmissionRecord,
    EventRecord,
    ExperimentDecisionRecord,
    JourneyRecord,
    JourneyStatus,
    JourneyVersionRecord,
    NewEvent,
    NodeVisitRecord,
    PersonRecord,
    PredictionRunRecord,
    SegmentRecord,
    SettingRecord,
    SuppressionRecord,
    TemplateRecord,
    TokenRecord,
    TraitOperation,
    UserRecord,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "DELIVERY_STATUSES",
    "IN_APP",
    "UNFINISHED",
    "AuditRecord",
    "BroadcastRecord",
    "CapWindow",
    "DeliveryRecord",
    "DeliveryStatus",
    "EnrollmentRecord",
    "EntryAdmissionRecord",
    "EventRecord",
    "ExperimentDecisionRecord",
    "JourneyRecord",
    "JourneyStatus",
    "JourneyVersionRecord",
    "NewEvent",
    "NodeVisitRecord",
    "PersonRecord",
    "PredictionRunRecord",
    "SegmentRecord",
    "SettingRecord",
    "Store",
    "SuppressionRecord",
    "TemplateRecord",
    "TokenRecord",
    "TraitOperation",
    "UTCDateTime",
    "UserData",
    "UserRecord",
    "utcnow",
]


class Store(
    JourneysAggregate,
    ProfilesAggregate,
    EventsAggregate,
    CatalogAggregate,
    DeliveriesAggregate,
    EnrollmentsAggregate,
    ExperimentsAggregate,
    BroadcastsAggregate,
    PrivacyAggregate,
    AccessAggregate,
    PeopleAggregate,
):
    """The app store over one database URL (SQLite file, in-memory SQLite, or PostgreSQL).

    Opening it migrates the database to the newest revision (`migration` says what that
    did); it raises `ConfigurationError` when the database cannot be reached or migrated.
    Returned records are detached copies: reading their attributes is safe after the method
    returns, changing them changes nothing stored. An in-memory SQLite store shares one
    connection and is for single-threaded tests only.
    """
