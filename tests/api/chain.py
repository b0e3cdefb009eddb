"""The verification an integration does with GET /timeline/ output alone (as the README says)."""

import hashlib
import json

GENESIS = "0" * 64


def verify_timeline(body: dict) -> int:
    """Recompute every hash from the API's own output; returns how many events were checked."""
    expected_prev, expected_sequence = GENESIS, 1
    for event in body["events"]:
        assert event["sequence"] == expected_sequence, f"missing event before {event['sequence']}"
        assert event["prev_hash"] == expected_prev, f"broken link at {event['sequence']}"
        canonical = json.dumps(
            [
                body["chain"],
                event["sequence"],
                event["prev_hash"],
                event["created_at"],
                event["actor"],
                event["code"],
                event["outcome"],
                event["detail"],
                event["source_ip"] or "",
                event["user_agent"],
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert hashlib.sha256(canonical.encode()).hexdigest() == event["hash"], (
            f"event {event['sequence']} does not match its hash"
        )
        expected_prev, expected_sequence = event["hash"], expected_sequence + 1
    assert body["head_sequence"] == expected_sequence - 1, "events missing at the end"
    assert body["head_hash"] == expected_prev
    return len(body["events"])
