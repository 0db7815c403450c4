"""Fuzzing every JSON contract: whatever bytes arrive on a topic, parsing ends in a model or a precise
pydantic ValidationError (which the stage runtime dead-letters) — never another exception, never a crash.

Bounded for CI: a fixed number of examples per topic, no deadline surprises.
"""

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts import examples
from contracts.envelope import parse_envelope
from contracts.topics import TOPICS, Topic

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
TOPICS_WITH_PAYLOAD = [t for t in TOPICS if t.payload is not None]


def _payload(topic: Topic[Any]) -> type[BaseModel]:
    assert topic.payload is not None
    return topic.payload


def _parse(raw: bytes | str, topic: Topic[Any]) -> None:
    with contextlib.suppress(ValidationError):
        parse_envelope(raw, _payload(topic))


@pytest.mark.parametrize("topic", TOPICS_WITH_PAYLOAD, ids=lambda t: t.name)
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_never_escape_validation(topic: Topic[Any], data: bytes) -> None:
    _parse(data, topic)


@pytest.mark.parametrize("topic", TOPICS_WITH_PAYLOAD, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_mutated_valid_envelopes_never_escape_validation(topic: Topic[Any], data: st.DataObject) -> None:
    """Start from the topic's documented example and replace, drop or add fields at any depth."""
    document: Any = json.loads(examples.example_envelope(topic).to_bytes())
    target = document if data.draw(st.booleans()) else document["payload"]
    keys = sorted(target)
    action = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace" and keys:
        target[data.draw(st.sampled_from(keys))] = data.draw(json_values)
    elif action == "drop" and keys:
        target.pop(data.draw(st.sampled_from(keys)))
    else:
        target[data.draw(st.text(min_size=1, max_size=10))] = data.draw(json_values)
    _parse(json.dumps(document), topic)


@pytest.mark.parametrize("topic", TOPICS_WITH_PAYLOAD, ids=lambda t: t.name)
def test_money_floats_and_wrong_scales_are_refused_with_a_location(topic: Topic[Any]) -> None:
    document: Any = json.loads(examples.example_envelope(topic).to_bytes())
    money = [
        k
        for k, v in document["payload"].items()
        if isinstance(v, str) and v.replace("-", "").replace(".", "").isdigit() and "." in v
    ]
    if not money:
        pytest.skip("no money field in this payload")
    document["payload"][money[0]] = 12.5
    with pytest.raises(ValidationError) as caught:
        parse_envelope(json.dumps(document), _payload(topic))
    assert caught.value.errors()[0]["loc"][:2] == ("payload", money[0])
