"""`verify_timeline`: the database's record checked against the signed checkpoints in the anchor.

What the anchor holds cannot be removed or changed (Object Lock, COMPLIANCE mode), and only the
signing key makes a checkpoint, so a database writer who rewrites and re-hashes a chain, deletes a
chain with its head, or truncates the table is found out: the newest anchored checkpoint vouches
for every chain's head at its time. Events appended since are covered by their hash chain until
the next checkpoint. Incremental runs start from the last checkpoint a run verified.
"""

import json
from dataclasses import dataclass, field

from approvals import signatures
from approvals.models import TimelineCheckpoint
from approvals.services.checkpoints import (
    SignedCheckpoint,
    anchor_location,
    checkpoint_latest,
    digest_of,
    header_name,
    heads_name,
)
from approvals.timeline import Verification, snapshot, timeline_verify, timeline_verify_since
from awsaccess import anchor, runtime
from awsaccess.types import AwsConnection

HEADER_FOLDER = "checkpoints/"


class AnchorProblem(Exception):
    """The anchor cannot vouch for the record (missing, unreadable or tampered with)."""


@dataclass
class Audit:
    verification: Verification
    checkpoint: SignedCheckpoint | None = None
    since: int | None = None
    anchored: bool = False
    notes: list[str] = field(default_factory=list)


def _parse_header(body: bytes) -> SignedCheckpoint | None:
    try:
        parsed = json.loads(body)
        signature = signatures.Signature(**parsed["signature"])
        return SignedCheckpoint(parsed["header"], signature)
    except (ValueError, KeyError, TypeError):
        return None


def anchored_checkpoint(
    broker: AwsConnection, location: anchor.AnchorLocation, sequence: int, *, with_heads: bool
) -> SignedCheckpoint:
    """Checkpoint `sequence` as the anchor holds it, signature (and list) verified. A second
    version under its name means someone wrote over it: the locked original still answers, but
    the attempt is reported."""
    versions = anchor.anchor_versions(broker, location, header_name(sequence))
    valid = [
        checkpoint
        for checkpoint in (_parse_header(version.body) for version in versions)
        if checkpoint is not None
        and checkpoint.problem() is None
        and checkpoint.sequence == sequence
    ]
    if not valid:
        raise AnchorProblem(f"anchored checkpoint #{sequence} is missing or not validly signed")
    if len(versions) > 1:
        raise AnchorProblem(
            f"anchored checkpoint #{sequence} was written over ({len(versions)} versions; "
            "the locked original is intact)"
        )
    checkpoint = valid[0]
    if not with_heads:
        return checkpoint
    for version in anchor.anchor_versions(broker, location, heads_name(sequence)):
        heads = json.loads(version.body)
        if digest_of(heads) == checkpoint.header["heads_digest"]:
            return SignedCheckpoint(checkpoint.header, checkpoint.signature, heads)
    raise AnchorProblem(f"anchored checkpoint #{sequence}: no head list matches its signature")


def anchored_latest_sequence(broker: AwsConnection, location: anchor.AnchorLocation) -> int:
    """The newest checkpoint number in the anchor. The database's newest is only a hint where to
    start listing: a checkpoint number missing from the anchor falls back to a full listing."""
    hint = TimelineCheckpoint.objects.order_by("-sequence").values_list("sequence", flat=True)
    start = (hint.first() or 1) - 1
    names = anchor.anchor_names(
        broker, location, HEADER_FOLDER, after=header_name(start) if start else ""
    )
    if not names and start:
        names = anchor.anchor_names(broker, location, HEADER_FOLDER)
    if not names:
        raise AnchorProblem("the anchor holds no checkpoint yet")
    return int(names[-1].rsplit("/", 1)[1].split(".")[0])


def _links_check(
    broker: AwsConnection, location: anchor.AnchorLocation, since: SignedCheckpoint, latest: int
) -> None:
    """Each checkpoint after `since` names the digest of the one before it."""
    previous = since
    for sequence in range(since.sequence + 1, latest + 1):
        current = anchored_checkpoint(broker, location, sequence, with_heads=False)
        if current.header["previous_digest"] != previous.digest:
            raise AnchorProblem(f"anchored checkpoint #{sequence} does not follow #{sequence - 1}")
        previous = current


def timeline_audit(*, since: int | None = None, broker: AwsConnection | None = None) -> Audit:
    """Verify the record against the newest anchored checkpoint; from checkpoint `since` on
    only (incremental), or every event."""
    location = anchor_location()
    if location is None:
        latest = checkpoint_latest()
        with snapshot():
            verification = timeline_verify(pins=latest.pins() if latest else None)
        note = "no anchor bucket configured: checked against the database's own checkpoint"
        return Audit(verification, latest, notes=[note])
    broker = broker or runtime.broker_connection()
    try:
        latest_number = anchored_latest_sequence(broker, location)
        checkpoint = anchored_checkpoint(broker, location, latest_number, with_heads=True)
        earlier = None
        if since is not None and since <= latest_number:
            earlier = anchored_checkpoint(broker, location, since, with_heads=True)
            _links_check(broker, location, earlier, latest_number)
    except AnchorProblem as problem:
        return Audit(Verification(0, reason=str(problem)), anchored=True)
    with snapshot():
        if earlier is not None:
            verification = timeline_verify_since(verified=earlier.pins(), pins=checkpoint.pins())
        else:
            verification = timeline_verify(pins=checkpoint.pins())
    return Audit(verification, checkpoint, since if earlier else None, anchored=True)
