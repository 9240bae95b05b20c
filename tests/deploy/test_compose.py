"""docker-compose.yml, the Dockerfile and .env.example, checked by construction (no Docker
engine runs here): commands the CLI accepts, every variable documented, official images,
start order and health checks, and the settings each component needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import build_parser
from journeys.contracts import SEARCH_ATTRIBUTES
from journeys.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name for name, service in SERVICES.items() if "build" in service}
OFFICIAL = ("postgres:", "temporalio/auto-setup:", "temporalio/admin-tools:", "temporalio/ui:")
DEPLOYMENT_DOC = (ROOT / "docs" / "deployment.md").read_text()

# What each component reads (journeys.settings field names); TEMPORAL_* and the database URL
# are checked for all of them.
NEEDS = {
    "api": {"write_key", "admin_token", "unsubscribe_secret", "public_url"},
    "worker": {
        "unsubscribe_secret", "public_url", "smtp_url", "email_from", "push_url", "push_token",
        "sms_url", "sms_token", "sms_from", "webhook_secret", "webhook_allow", "worker_metrics",
        "worker_max_concurrent_activities", "worker_max_concurrent_workflow_tasks",
        "worker_cache_size",
    },
    "designer": {"api_url", "admin_token", "temporal_ui_url"},
    "migrate": {"database_url"},
}  # fmt: skip
STORE_USERS = {"api", "worker", "migrate"}


def alias(field: str) -> str:
    """The environment variable of a setting."""
    name = Settings.model_fields[field].validation_alias
    assert isinstance(name, str)
    return name


def variables(text: str) -> set[str]:
    """The variables a compose file interpolates (`${NAME}`, `${NAME:-default}`,
    `${NAME:?error}`, `$NAME`); `$$` is a literal dollar for the container's shell."""
    text = text.replace("$$", "")
    braced = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)
    bare = re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text)
    return set(braced) | set(bare)


def example_variables() -> dict[str, str]:
    """The assignments of .env.example."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value for name, value in pairs}


def environment(name: str) -> dict[str, str]:
    """A service's environment (a mapping in this file, never a list)."""
    values = SERVICES[name].get("environment", {})
    assert isinstance(values, dict), f"{name}: environment should be a mapping"
    return {key: str(value) for key, value in values.items()}


def test_our_services_run_real_journeys_commands() -> None:
    assert sorted(OURS) == ["api", "designer", "migrate", "worker"]
    parser = build_parser()
    for name in OURS:
        command = SERVICES[name]["command"]
        assert isinstance(command, list), f"{name}: command should be an exec-form list"
        args = parser.parse_args(command)  # exits (fails the test) on an unknown command
        assert args.command == name, f"{name} runs `journeys {args.command}`"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["journeys"]' in dockerfile


def test_every_variable_is_in_env_example_and_documented() -> None:
    used = variables((ROOT / "docker-compose.yml").read_text())
    example = example_variables()
    assert sorted(used - set(example)) == []
    assert sorted(set(example) - used) == []  # nothing stale either
    undocumented = [name for name in sorted(used) if f"`{name}`" not in DEPLOYMENT_DOC]
    assert undocumented == []
    # The secrets have no value in the example: compose refuses to start without them.
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):\?", (ROOT / "docker-compose.yml").read_text()))
    assert required == {
        "POSTGRES_PASSWORD", "JOURNEYS_WRITE_KEY", "JOURNEYS_ADMIN_TOKEN",
        "JOURNEYS_UNSUBSCRIBE_SECRET",
    }  # fmt: skip
    assert all(example[name] == "" for name in required)


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert copied == packages


def test_every_service_is_documented() -> None:
    missing = [name for name in SERVICES if f"`{name}`" not in DEPLOYMENT_DOC]
    assert missing == []


def test_images_are_official_or_built_here() -> None:
    for name, service in SERVICES.items():
        if name in OURS:
            assert service["image"] == "journeys:local"
        else:
            assert service["image"].startswith(OFFICIAL), f"{name}: {service['image']}"


def test_the_worker_scales() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert all("container_name" not in service for service in SERVICES.values())


def test_start_order_and_health_checks() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for other, condition in depends.items():
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[other], f"{name} waits for {other}'s health"
            else:
                assert wanted == "service_completed_successfully", (name, other, wanted)
                assert SERVICES[other].get("restart") == "on-failure", f"{other} must exit"
    for name in ("postgresql", "temporal", "api", "worker", "designer"):
        assert "healthcheck" in SERVICES[name], name
    assert "temporal-setup" in SERVICES["api"]["depends_on"]
    assert "migrate" in SERVICES["worker"]["depends_on"]


def test_search_attributes_are_registered() -> None:
    script = SERVICES["temporal-setup"]["command"][0]
    for key in SEARCH_ATTRIBUTES:
        # As the temporal CLI spells the types: Keyword, Int.
        assert f"{key.name}:{key.indexed_value_type.name.title()}" in script


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_each_component_gets_the_settings_it_needs(name: str) -> None:
    given = environment(name)
    known = {alias(field) for field in Settings.model_fields}
    assert sorted(set(given) - known) == []  # no misspelt variable
    wanted = {alias(field) for field in NEEDS[name]}
    if name in STORE_USERS:
        wanted |= {alias("database_url"), alias("temporal_address"), alias("task_queue")}
    assert sorted(wanted - set(given)) == []
    if name in STORE_USERS:
        assert given[alias("database_url")].startswith("postgresql+psycopg://")


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [alias(f) for f in Settings.model_fields if f"`{alias(f)}`" not in readme]
    assert missing == []
