"""What an EventBridge rule sends to its targets, as AWS does it (moto 5.2.5 patched in place).

moto delivers through disabled rules, ignores a target's Input and InputPath, drops "account"
from the event, never asks the queue's policy whether the rule may send, and forwards to another
region's bus without the role AWS requires. Here:

* a rule that is not ENABLED sends nothing;
* an SQS target gets the whole event, or its `Input` constant, or the `InputPath` part of it,
  and only if the queue's policy allows `events.amazonaws.com` to `sqs:SendMessage` with
  `aws:SourceArn` = the rule (otherwise the delivery fails, as AWS counts a FailedInvocation);
* an event bus in another region or account (cross-region routing, e.g. IAM's us-east-1 events
  to the region that watches them) gets the event unchanged, only through the target's
  `RoleArn`, a role events.amazonaws.com may assume that allows `events:PutEvents` on that bus.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from moto.events.models import UNDEFINED, EventBus, EventPattern, Rule, events_backends
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.sqs.models import sqs_backends

from awsaccess.sandbox.evaluation import Decision, Request, evaluate

logger = logging.getLogger(__name__)

EVENTS_SERVICE = "events.amazonaws.com"
_original_send_to_targets = Rule.send_to_targets


def _input_path(event: dict[str, Any], path: str) -> Any:
    """EventBridge's InputPath: a plain `$.a.b` path into the event (None when absent)."""
    node: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _iso_time(event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS hands it to a target: ISO time, no moto bookkeeping."""
    shaped = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(shaped.get("time"), int | float):
        moment = datetime.fromtimestamp(float(shaped["time"]), UTC)
        shaped["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return shaped


def _sqs_body(target: dict[str, Any], event: dict[str, Any]) -> str | None:
    """The message AWS would send for an SQS target, or None where moto's own code applies."""
    if "InputTransformer" in target:
        return None
    if "Input" in target:
        return str(target["Input"])  # a constant replaces the event entirely
    if "InputPath" in target:
        return json.dumps(_input_path(_iso_time(event), target["InputPath"]))
    return json.dumps(_iso_time(event))  # the whole event, "account" included


def _document(text: Any) -> dict:
    if isinstance(text, str):
        return json.loads(text if text.lstrip().startswith("{") else unquote(text))
    return dict(text)


def queue_accepts(rule_arn: str, queue_arn: str) -> bool:
    """The queue's resource policy lets this rule send (no policy: only the owner may)."""
    account, region, name = (
        queue_arn.split(":")[4],
        queue_arn.split(":")[3],
        queue_arn.split(":")[5],
    )
    queue = sqs_backends[account][region].queues.get(name)
    if queue is None or not queue.policy:
        return False
    probe = Request(
        action="sqs:SendMessage",
        resource=queue_arn,
        context={"aws:sourcearn": rule_arn, "aws:sourceaccount": rule_arn.split(":")[4]},
        principal_arn=EVENTS_SERVICE,
    )
    return evaluate([_document(queue.policy)], probe, resource_based=True)[0] is Decision.ALLOW


def role_may_put_events(role_arn: str | None, bus_arn: str) -> bool:
    """EventBridge may assume the role, and the role's policies allow PutEvents on the bus."""
    if not role_arn:
        return False
    try:
        role = iam_backends[role_arn.split(":")[4]]["aws"].get_role_by_arn(role_arn)
    except (IndexError, KeyError, NotFoundException):
        return False
    trust = Request("sts:AssumeRole", role_arn, {}, principal_arn=EVENTS_SERVICE)
    if (
        evaluate([_document(role.assume_role_policy_document)], trust, resource_based=True)[0]
        is not Decision.ALLOW
    ):
        return False
    documents = [_document(text) for text in role.policies.values()]
    for policy in role.managed_policies.values():
        default = next(version for version in policy.versions if version.is_default)
        documents.append(_document(default.document))
    put = Request("events:PutEvents", bus_arn, {})
    return evaluate(documents, put)[0] is Decision.ALLOW


def flattened(event: dict[str, Any]) -> dict[str, Any]:
    """The event as moto's pattern matching reads it (it serialises and flattens the event once
    per rule it tries; once per event is enough)."""
    return EventPattern._flatten_dict(json.loads(json.dumps(event)))


def _pattern_matches(
    pattern: EventPattern, flat: dict[str, Any], node: Any, prefix: str = ""
) -> bool:
    """moto's EventPattern._does_event_match, stopping at the first key that fails (moto tries
    every key and every `$or` alternative: most of the sandbox's time on a bus with many rules)."""
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key == "$or":
            matched = any(_pattern_matches(pattern, flat, choice, prefix) for choice in value)
        else:
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                matched = _pattern_matches(pattern, flat, value, path)
            elif isinstance(value, list):
                matched = pattern._does_item_match_filters(flat.get(path, UNDEFINED), value)
            else:
                matched = False
        if not matched:
            return False
    return True


def _matches(rule: Rule, flat: dict[str, Any]) -> bool:
    """The rule is ENABLED and its pattern matches the flattened event."""
    if rule.state != "ENABLED":
        return False
    pattern = rule.event_pattern.get_pattern()
    return not pattern or _pattern_matches(rule.event_pattern, flat, pattern)


def bus_deliver(bus: EventBus, event: dict[str, Any], *, skip: Rule | None = None) -> None:
    """Send the event to the targets of every rule of `bus` that matches it, as AWS does: each
    rule's targets get their own copy. With hundreds of rules (a bus that watches many roles),
    matching dominates, so the event is flattened once and only matching rules copy it."""
    flat = flattened(event)
    for rule in list(bus.rules.values()):
        if rule is skip:
            continue
        try:
            if _matches(rule, flat):
                _send_matched(rule, copy.deepcopy(event))
        except Exception:  # one broken target must not stop the others
            logger.exception("delivery to the targets of rule %s failed", rule.name)


def _to_bus(rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
    """Forward the event, unchanged, to the rules of another bus (cross-region routing)."""
    parts = target["Arn"].split(":")
    account, region, bus_name = parts[4], parts[3], parts[5].split("/", 1)[-1]
    remote = (account, region) != (rule.account_id, rule.region_name)
    if remote and not role_may_put_events(target.get("RoleArn"), target["Arn"]):
        logger.warning("rule %s: no role may put events on %s", rule.name, target["Arn"])
        return
    bus = events_backends[account][region].event_buses.get(bus_name)
    if bus is not None:
        bus_deliver(bus, event, skip=rule)


def _send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    """moto's entry point (PutEvents and its own callers): match, then send."""
    if _matches(self, flattened(original_event)):
        _send_matched(self, original_event, transform_input)


def _send_matched(rule: Rule, original_event: Any, transform_input: bool = True) -> None:
    """Send an event the rule matched to each of its targets."""
    others = []
    for target in rule.targets:
        arn = target["Arn"].split(":")
        if arn[2] == "events" and arn[5].startswith("event-bus/"):
            _to_bus(rule, target, original_event)
            continue
        body = _sqs_body(target, original_event) if arn[2] == "sqs" and transform_input else None
        if arn[2] == "sqs" and not queue_accepts(rule.arn, target["Arn"]):
            logger.warning("rule %s: the queue's policy refuses it", rule.name)
            continue
        if body is None:
            others.append(target)
            continue
        group_id = target.get("SqsParameters", {}).get("MessageGroupId")
        sqs_backends[arn[4]][arn[3]].send_message(
            queue_name=arn[5], message_body=body, group_id=group_id
        )
    if others:
        rest = copy.copy(rule)
        rest.targets = others
        _original_send_to_targets(rest, original_event, transform_input)


def install() -> None:
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]  # patching moto in place
