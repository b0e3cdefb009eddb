"""What an auditor does with `GET …/timeline/` output and the public keys alone (README: "Verifying
one request"): the hash chain, every approval's signature and the chain's seal. No portal code."""

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.api.chain import verify_timeline

PREFIX = b"breakglass-portal/v1\n"
APPROVAL_FIELDS = ("content_digest", "approver_id", "device", "time_step", "decision", "signed_at")


def signature_ok(keys: dict, purpose: str, payload: dict, signature: dict) -> bool:
    key = keys.get(signature["key_id"])
    if key is None:
        return False
    message = (
        PREFIX
        + purpose.encode()
        + b"\n"
        + json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
            base64.b64decode(signature["value"]), message
        )
    except Exception:
        return False
    return True


def verify_signed_request(body: dict, public_keys: list[dict]) -> dict:
    """→ {"approvals": n signed approvals verified, "sealed_sequence": n or None}; asserts."""
    verify_timeline(body)
    keys = {key["key_id"]: key["public_key"] for key in public_keys}
    request_id = body["chain"].split(":", 1)[1]
    approvals, sealed = 0, None
    by_sequence = {event["sequence"]: event for event in body["events"]}
    for event in body["events"]:
        detail = event["detail"]
        if event["code"] in ("approvals.signature.approved", "approvals.signature.rejected"):
            payload = {"request": request_id, **{name: detail[name] for name in APPROVAL_FIELDS}}
            assert signature_ok(keys, "approval", payload, detail["signature"]), event["sequence"]
            approvals += 1
        if event["code"] == "approvals.timeline.sealed":
            sealed_event = by_sequence[detail["sealed_sequence"]]
            assert sealed_event["hash"] == detail["sealed_hash"], "seal names another event"
            payload = {
                "chain": body["chain"],
                "sequence": detail["sealed_sequence"],
                "hash": detail["sealed_hash"],
            }
            assert signature_ok(keys, "timeline.seal", payload, detail["signature"])
            sealed = detail["sealed_sequence"]
    return {"approvals": approvals, "sealed_sequence": sealed}
