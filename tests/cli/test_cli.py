"""`journeys validate` and `journeys schema` as users run them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_journeys

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))


def test_validate_accepts_the_examples() -> None:
    result = run_journeys("validate", *map(str, EXAMPLES))
    assert (result.returncode, result.stdout) == (0, "")


def test_validate_lists_every_problem_as_file_path_message(tmp_path: Path) -> None:
    document = json.loads(EXAMPLES[0].read_text())
    document["start"] = "nowhere"
    document["entry"]["reentry"] = "soon"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    not_json = tmp_path / "not.json"
    not_json.write_text("{ nope")
    missing = tmp_path / "missing.json"

    result = run_journeys("validate", str(EXAMPLES[0]), str(broken), str(not_json), str(missing))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{broken}: entry.reentry: bad duration 'soon'" in lines[0]
    assert f"{broken}: start: unknown node 'nowhere'" in lines
    assert f"{not_json}: $: invalid JSON at line 1 column 3: Expecting property name" in lines[-2]
    assert lines[-1].startswith(f"{missing}: $: cannot read:")
    assert not any(line.startswith(str(EXAMPLES[0])) for line in lines)


def test_validate_without_files_is_a_usage_error() -> None:
    result = run_journeys("validate")
    assert result.returncode == 2
    assert "FILE" in result.stderr


def test_schema_describes_every_node_type() -> None:
    result = run_journeys("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    node_types = {
        definition["properties"]["type"]["const"]
        for definition in schema["$defs"].values()
        if "type" in definition.get("properties", {})
        and "const" in definition["properties"]["type"]
    }
    assert node_types == {
        "message", "delay", "wait_for_event", "wait_for_inactivity",
        "branch", "experiment", "update_user", "exit",
    }  # fmt: skip
    assert set(schema["required"]) == {"id", "name", "entry", "start", "nodes"}
