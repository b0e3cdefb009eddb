"""Issue 15 item 5: no record, however malformed, escapes the watcher's reading as anything but a
PoisonEvent. Real-shaped CloudTrail records (tests/fixtures/cloudtrail) with random mutations."""

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.models import AccessProfile
from approvals.services.watch import watch_record_read
from approvals.watch_events import (
    PoisonEvent,
    RoleUse,
    SessionCall,
    record_load,
    role_use_from,
    session_call_from,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cloudtrail"
RECORDS = [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]
# Read as the profile whose role the fixtures name (never saved: reading needs no database).
PROFILE = AccessProfile(role_arn="arn:aws:iam::123456789012:role/breakglass-admin")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


@st.composite
def mutated_records(draw) -> str:
    record = json.loads(json.dumps(draw(st.sampled_from(RECORDS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        targets = paths(record)
        if not targets:
            break
        *parents, leaf = draw(st.sampled_from(targets))
        node = record
        for parent in parents:
            node = node[parent]
        if isinstance(node, dict) and draw(st.booleans()):
            del node[leaf]
        else:
            node[leaf] = draw(json_values)
    envelope = {"detail-type": "AWS API Call via CloudTrail", "detail": record}
    body = json.dumps(draw(st.sampled_from([envelope, record])))
    cut = draw(st.none() | st.integers(min_value=0, max_value=len(body)))
    return body if cut is None else body[:cut]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_a_mutated_record_is_read_or_set_aside_never_an_exception(body):
    try:
        record = watch_record_read(body, PROFILE)
    except PoisonEvent:
        return
    assert isinstance(record, RoleUse | SessionCall)
    json.dumps(record.raw if isinstance(record, RoleUse) else record.request_parameters)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_each_parser_itself_raises_nothing_but_poison(body):
    """Not only the dispatch's safety net: the parsers type-check every field themselves."""
    for parse in (role_use_from, session_call_from):
        with contextlib.suppress(PoisonEvent):
            parse(*record_load(body))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_any_text_at_all_is_read_or_set_aside(body):
    with contextlib.suppress(PoisonEvent):
        watch_record_read(body, PROFILE)


def test_the_issue_15_shapes_are_poison_not_attribute_errors():
    for field, value in (
        ("responseElements", "not an object"),
        ("userIdentity", ["a", "list"]),
        ("eventTime", "9999-12-31T23:59:59-23:59"),
    ):
        record = json.loads(json.dumps(RECORDS[0]))
        record[field] = value
        with contextlib.suppress(PoisonEvent):
            watch_record_read(json.dumps(record), PROFILE)
    record = json.loads(json.dumps(RECORDS[-1]))
    record["userIdentity"]["sessionContext"] = "not an object"
    with contextlib.suppress(PoisonEvent):
        watch_record_read(json.dumps(record), PROFILE)
