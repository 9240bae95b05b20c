"""The one `Settings` object, read from the environment and validated at start-up."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys.errors import ConfigurationError


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


def load_settings() -> Settings:
    """The settings from the environment; raise `ConfigurationError` naming what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None
