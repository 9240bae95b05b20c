"""The one `Settings` object, read from the environment and validated at start-up."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys.errors import ConfigurationError

WORKER_ACTIVITIES = 32
"""Activities one worker runs at once, and its activity threads, unless configured."""
WORKER_WORKFLOW_TASKS = 100
"""Workflow tasks one worker runs at once unless configured (the SDK's default)."""
ROUTER_PARTITIONS = 64
"""Partitions of the outbox unless configured: routers share them, so at most this many API
replicas route events at once."""
WORKER_CACHE_SIZE = 1000
"""Workflow runs one worker keeps in memory between their tasks unless configured."""


class Component(StrEnum):
    """What runs with these settings, and so which credentials it cannot do without."""

    API = "the API"
    WORKER = "the worker"
    DESIGNER = "the designer"
    PUBLISH = "publishing"
    ACCESS = "managing tokens and people"
    DEMO = "the demo"


_SECRETS = {
    "write_key": ("JOURNEYS_WRITE_KEY", "the ingest credential"),
    "admin_token": ("JOURNEYS_ADMIN_TOKEN", "the management credential"),
    "unsubscribe_secret": (
        "JOURNEYS_UNSUBSCRIBE_SECRET",
        "signs unsubscribe links and tracked links (clicks, opens); the API and the worker "
        "share it",
    ),
}
"""Each credential a component may need: its variable, and what it is for."""

NEEDS: dict[Component, tuple[str, ...]] = {
    Component.API: ("write_key", "admin_token", "unsubscribe_secret"),
    Component.WORKER: ("unsubscribe_secret",),
    Component.DESIGNER: ("admin_token",),
    Component.PUBLISH: ("admin_token",),
    Component.ACCESS: ("admin_token",),
    Component.DEMO: ("admin_token", "write_key"),
}
"""The credentials each component needs to start (`journeys up` sets development values)."""


class SignIn(StrEnum):
    """How the designer knows who uses it."""

    OFF = "off"
    """Nobody signs in: the designer acts with the admin token (keep it on loopback)."""
    ACCOUNTS = "accounts"
    """People sign in with the email and password an admin gave them (`journeys people`)."""
    OIDC = "oidc"
    """People sign in through an OpenID Connect provider (Streamlit's `[auth]` secrets)."""


class Settings(BaseSettings):
    """Configuration of every component (see the configuration table in the README)."""

    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, populate_by_name=True
    )

    temporal_address: str = Field("localhost:7233", validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field("journeys", validation_alias="JOURNEYS_TASK_QUEUE")
    database_url: str = Field(
        "sqlite:///.journeys/journeys.db", validation_alias="JOURNEYS_DATABASE_URL"
    )
    write_key: str | None = Field(None, validation_alias="JOURNEYS_WRITE_KEY")
    admin_token: str | None = Field(None, validation_alias="JOURNEYS_ADMIN_TOKEN")
    api_url: str = Field("http://localhost:8000", validation_alias="JOURNEYS_API_URL")
    temporal_ui_url: str = Field(
        "http://localhost:8233", validation_alias="JOURNEYS_TEMPORAL_UI_URL"
    )
    public_url: str | None = Field(
        None,
        validation_alias="JOURNEYS_PUBLIC_URL",
        description="the API as recipients reach it (unsubscribe and tracked links); "
        "default: api_url",
    )
    unsubscribe_secret: str | None = Field(None, validation_alias="JOURNEYS_UNSUBSCRIBE_SECRET")
    inapp_secret: str | None = Field(
        None,
        validation_alias="JOURNEYS_INAPP_SECRET",
        description="identity verification for browsers: when set, inbox reads and the live "
        "stream also need user_hash = hex HMAC-SHA256(secret, user id)",
    )
    smtp_url: str | None = Field(None, validation_alias="JOURNEYS_SMTP_URL")
    email_from: str | None = Field(None, validation_alias="JOURNEYS_EMAIL_FROM")
    push_url: str | None = Field(None, validation_alias="JOURNEYS_PUSH_URL")
    push_token: str | None = Field(None, validation_alias="JOURNEYS_PUSH_TOKEN")
    sms_url: str | None = Field(None, validation_alias="JOURNEYS_SMS_URL")
    sms_token: str | None = Field(None, validation_alias="JOURNEYS_SMS_TOKEN")
    sms_from: str | None = Field(None, validation_alias="JOURNEYS_SMS_FROM")
    webhook_secret: str | None = Field(None, validation_alias="JOURNEYS_WEBHOOK_SECRET")
    webhook_allow: str = Field(
        "",
        validation_alias="JOURNEYS_WEBHOOK_ALLOW",
        description="hosts and CIDRs, separated by commas or spaces",
    )

    worker_max_concurrent_activities: int = Field(
        WORKER_ACTIVITIES,
        gt=0,
        validation_alias="JOURNEYS_WORKER_MAX_CONCURRENT_ACTIVITIES",
        description="activities one worker runs at once (and its activity threads)",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        WORKER_WORKFLOW_TASKS,
        gt=0,
        validation_alias="JOURNEYS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS",
    )
    worker_cache_size: int = Field(
        WORKER_CACHE_SIZE,
        ge=0,
        validation_alias="JOURNEYS_WORKER_CACHE_SIZE",
        description="workflow runs a worker keeps in memory between their tasks",
    )
    worker_metrics: str = Field(
        "",
        validation_alias="JOURNEYS_WORKER_METRICS",
        description="host:port where the worker serves Prometheus metrics (e.g. 0.0.0.0:9464); "
        "empty: none",
    )
    router_partitions: int = Field(
        ROUTER_PARTITIONS,
        ge=1,
        le=4096,
        validation_alias="JOURNEYS_ROUTER_PARTITIONS",
        description="how the outbox is split among the routers of API replicas (PostgreSQL; "
        "the same on every replica); SQLite runs exactly one router",
    )
    log_level: str = Field("INFO", validation_alias="JOURNEYS_LOG_LEVEL")
    session_hours: float = Field(
        12,
        gt=0,
        le=24 * 30,
        validation_alias="JOURNEYS_SESSION_HOURS",
        description="how long a designer sign-in lasts",
    )
    trusted_proxies: str = Field(
        "127.0.0.1, ::1",
        validation_alias="JOURNEYS_TRUSTED_PROXIES",
        description="addresses and CIDRs (commas or spaces) of the designer and any reverse "
        "proxy: from them, the API takes a sign-in's client address from X-Forwarded-For",
    )
    designer_sign_in: SignIn = Field(
        SignIn.OFF,
        validation_alias="JOURNEYS_DESIGNER_SIGN_IN",
        description="off (the designer acts with the admin token), accounts or oidc",
    )

    @field_validator("worker_metrics")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, colon, port = value.strip().rpartition(":")
        if value.strip() and not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"expected host:port (e.g. 0.0.0.0:9464) or nothing, not {value!r}")
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.replace(",", " ").split():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"expected addresses or CIDRs, not {item!r}") from None
        return value

    @property
    def trusted_networks(self) -> list[IPv4Network | IPv6Network]:
        """`trusted_proxies` as networks."""
        items = self.trusted_proxies.replace(",", " ").split()
        return [ipaddress.ip_network(item, strict=False) for item in items]

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
        return level

    def require(self, component: Component) -> Settings:
        """These settings, once they hold every credential `component` needs.

        The designer needs no admin token when people sign in with accounts (each person's
        session does the management). Raises `ConfigurationError` naming each missing
        variable and what it is for; the API also refuses a write key equal to the admin token
        (the write key ships inside apps and web pages, and must never manage journeys).
        """
        needs = NEEDS[component]
        if component is Component.DESIGNER and self.designer_sign_in is SignIn.ACCOUNTS:
            needs = ()  # each person's session token does the management
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            wanted = "; ".join(f"{_SECRETS[name][0]} ({_SECRETS[name][1]})" for name in missing)
            raise ConfigurationError(
                f"{component} needs {wanted}: set {'it' if len(missing) == 1 else 'them'} "
                "in the environment (`journeys up` sets development values)"
            )
        if component is Component.API and self.write_key == self.admin_token:
            raise ConfigurationError("JOURNEYS_WRITE_KEY and JOURNEYS_ADMIN_TOKEN must differ")
        return self

    @property
    def links_base_url(self) -> str:
        """Where links in messages (unsubscribe, tracked links, the open pixel) point: the
        public URL, else the API URL."""
        return (self.public_url or self.api_url).rstrip("/")


def load_settings() -> Settings:
    """The settings from the environment; raise `ConfigurationError` naming what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None
