"""schemas/asyncapi.yaml is a valid AsyncAPI 3.0.0 document and agrees with the code.

It is validated against the AsyncAPI 3.0.0 JSON Schema of the ``@asyncapi/specs`` npm
package, vendored in ``tests/data/`` (source, version and licence in the README beside
it), with the validator class that schema's ``$schema`` names (draft-07). Then, against
the repository: every ``schemas/json/*.schema.json`` file is the payload of some message
and every referenced file exists; every topic is a default of ``streams.settings``
(renaming a topic in code fails here); each message's name is its schema's ``title`` and
``type`` const; input messages sit on the topic ``streams.kafkaio.route`` sends them to;
every channel message is received or sent by an operation on that channel.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas.codec import dumps
from schemas.contracts import SCHEMA_FILES, load_schema, schema_dir
from schemas.events import EVENT_TYPES
from streams.kafkaio import route
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
ASYNCAPI = ROOT / "schemas" / "asyncapi.yaml"
SPEC_SCHEMA = ROOT / "tests" / "data" / "asyncapi-3.0.0.schema.json"
TOPIC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)
                  if f.name.endswith("_topic")}
INPUT_TOPICS = set(Settings().input_topics)


def load_document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_document()


# --------------------------------------------------------------------------- helpers


def spec_errors(doc: dict[str, Any]) -> list[str]:
    """Where and why ``doc`` breaks the AsyncAPI 3.0.0 JSON Schema (empty when valid)."""
    spec = json.loads(SPEC_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(spec)
    errors = sorted(cls(spec).iter_errors(doc), key=lambda e: list(e.absolute_path))
    out = []
    for error in errors:
        deepest = jsonschema.exceptions.best_match([error, *(error.context or [])])
        out.append(f"{'/'.join(map(str, error.absolute_path))}: {deepest.message[:300]}")
    return out


def refs(node: Any, path: str = "#") -> Iterator[tuple[str, str]]:
    """(where, target) of every ``$ref`` in the document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield path, node["$ref"]
        for key, value in node.items():
            yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{path}/{i}")


def pointer(doc: Any, fragment: str) -> Any:
    """The value a JSON pointer fragment (``#/a/b``) names; KeyError if there is none."""
    node = doc
    for raw in fragment.removeprefix("#").split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    """Follow local references until a real object."""
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#"):
        node = pointer(doc, node["$ref"])
    return node


def payload_file(message: dict[str, Any]) -> str:
    """The schema file name a message's payload references (``score.schema.json``)."""
    payload = message["payload"]
    target = payload["schema"]["$ref"] if "schemaFormat" in payload else payload["$ref"]
    assert target.startswith("./json/"), target
    return str(target.removeprefix("./json/").split("#")[0])


def channel_messages(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(channel id, message key, message) for every message of every channel."""
    for cid, channel in doc["channels"].items():
        for key, message in deref(doc, channel).get("messages", {}).items():
            yield cid, key, deref(doc, message)


def unreferenced_schema_files(doc: dict[str, Any]) -> list[str]:
    """Schema files in schemas/json/ that no channel message carries."""
    used = {payload_file(m) for _, _, m in channel_messages(doc)}
    return sorted({p.name for p in schema_dir().glob("*.schema.json")} - used)


# --------------------------------------------------------------------------- the spec


def test_vendored_spec_schema_is_asyncapi_3_0_0_draft_07() -> None:
    spec = json.loads(SPEC_SCHEMA.read_text(encoding="utf-8"))
    assert spec["$schema"] == "http://json-schema.org/draft-07/schema"
    assert spec["properties"]["asyncapi"]["const"] == "3.0.0"
    cls = jsonschema.validators.validator_for(spec)
    assert cls is jsonschema.Draft7Validator
    cls.check_schema(spec)
    assert (SPEC_SCHEMA.parent / "asyncapi-3.0.0.schema.README.md").is_file()


def test_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert spec_errors(doc) == []


@pytest.mark.parametrize("breakage", ["action", "cleanup_policy", "no_channel_address"])
def test_spec_validation_is_not_vacuous(doc: dict[str, Any], breakage: str) -> None:
    bad = copy.deepcopy(doc)
    if breakage == "action":
        bad["operations"]["sendScores"]["action"] = "publish"  # AsyncAPI 2 wording
    elif breakage == "cleanup_policy":
        bad["channels"]["scores"]["bindings"]["kafka"]["topicConfiguration"][
            "cleanup.policy"] = ["compacted"]
    else:
        bad["channels"]["scores"]["address"] = 42
    assert spec_errors(bad)


# --------------------------------------------------------------------------- references


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    broken = []
    for where, target in refs(doc):
        file_part, _, fragment = target.partition("#")
        try:
            if not file_part:
                pointer(doc, "#" + fragment)
                continue
            path = ASYNCAPI.parent / file_part
            if not path.is_file():
                broken.append(f"{where}: {target} (no such file)")
                continue
            pointer(json.loads(path.read_text(encoding="utf-8")), "#" + fragment)
        except (KeyError, IndexError, ValueError, TypeError):
            broken.append(f"{where}: {target} (nothing there)")
    assert broken == []


def test_every_schema_file_is_a_message_payload(doc: dict[str, Any]) -> None:
    assert unreferenced_schema_files(doc) == []
    assert {payload_file(m) for _, _, m in channel_messages(doc)} == set(SCHEMA_FILES)


def test_an_unreferenced_schema_file_is_caught(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    del bad["channels"]["deadletter"]["messages"]["DeadLetter"]
    assert set(unreferenced_schema_files(bad)) - set(unreferenced_schema_files(doc)) == {
        "deadletter.schema.json"}


def test_every_component_message_is_on_a_channel(doc: dict[str, Any]) -> None:
    on_channels = {ref for _, ref in refs(doc["channels"]) if "/components/messages/" in ref}
    declared = {f"#/components/messages/{key}" for key in doc["components"]["messages"]}
    assert declared == on_channels


# --------------------------------------------------------------------------- the code


def test_topics_are_the_settings_defaults(doc: dict[str, Any]) -> None:
    addresses = [deref(doc, c)["address"] for c in doc["channels"].values()]
    binding_topics = [deref(doc, c).get("bindings", {}).get("kafka", {}).get("topic")
                      for c in doc["channels"].values()]
    assert sorted(addresses) == sorted(TOPIC_DEFAULTS.values())
    assert all(t is None or t in TOPIC_DEFAULTS.values() for t in binding_topics)


def test_partitions_and_compaction(doc: dict[str, Any]) -> None:
    by_topic = {deref(doc, c)["address"]: deref(doc, c)["bindings"]["kafka"]
                for c in doc["channels"].values()}
    defaults = Settings()
    for topic, kafka in by_topic.items():
        expected = 1 if topic == defaults.deadletter_topic else defaults.partitions
        assert kafka["partitions"] == expected, topic
        policy = kafka["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if topic == defaults.scores_topic else ["delete"]), topic


def test_message_names_match_their_schemas(doc: dict[str, Any]) -> None:
    for key, message in doc["components"]["messages"].items():
        schema = load_schema(payload_file(message))
        assert message["name"] == key == schema["title"], key
        kind = schema.get("properties", {}).get("type", {}).get("const")
        if kind is not None:
            assert message["name"] == kind, key
    for cid, key, message in channel_messages(doc):
        assert key == message["name"], f"{cid}: {key}"


def test_input_events_are_on_the_topic_they_are_routed_to(doc: dict[str, Any]) -> None:
    settings = Settings()
    seen = set()
    for cid, _, message in channel_messages(doc):
        schema = load_schema(payload_file(message))
        kind = schema.get("properties", {}).get("type", {}).get("const")
        address = doc["channels"][cid]["address"]
        if kind is None:
            assert address not in INPUT_TOPICS, f"{cid}: {message['name']}"
            continue
        seen.add(kind)
        topic, key = route(dumps(schema["examples"][0]), settings)
        assert topic == address, kind
        assert key == schema["examples"][0]["customer_id"].encode()
    assert seen == set(EVENT_TYPES)


def test_operations_receive_inputs_and_send_outputs(doc: dict[str, Any]) -> None:
    covered: set[tuple[str, str]] = set()
    for oid, op in doc["operations"].items():
        channel_ref = op["channel"]["$ref"]
        cid = channel_ref.removeprefix("#/channels/")
        address = doc["channels"][cid]["address"]
        assert op["action"] == ("receive" if address in INPUT_TOPICS else "send"), oid
        for m in op["messages"]:
            assert m["$ref"].startswith(f"{channel_ref}/messages/"), f"{oid}: {m['$ref']}"
            covered.add((cid, m["$ref"].rsplit("/", 1)[1]))
    every = {(cid, key) for cid, key, _ in channel_messages(doc)}
    assert every == covered


def test_key_pattern_is_the_contracts_id_pattern(doc: dict[str, Any]) -> None:
    id_pattern = load_schema("score")["$defs"]["id"]["pattern"]
    keys = [doc["components"]["messageTraits"]["keyedByCustomer"]["bindings"]["kafka"]["key"],
            doc["components"]["messages"]["DeadLetter"]["bindings"]["kafka"]["key"]]
    assert [k["pattern"] for k in keys] == [id_pattern, id_pattern]
