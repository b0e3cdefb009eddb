"""Reading the watch queues: long-poll receive and batch delete, plain dicts in and out.

Each access profile has one SQS queue (named by `policies.watch_name`) that its EventBridge rule
fills with CloudTrail AssumeRole events of the break-glass role.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, TypedDict

from awsaccess import policies
from awsaccess.clients import ClientFactory
from awsaccess.errors import aws_call
from awsaccess.types import AwsConnection, AwsTarget

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

# SQS's own limits for one ReceiveMessage and one DeleteMessageBatch call.
MAX_MESSAGES_PER_RECEIVE = 10
MAX_MESSAGES_PER_DELETE = 10
MAX_WAIT_SECONDS = 20


class ReceivedMessage(TypedDict):
    message_id: str
    receipt_handle: str  # what deletes it; valid until its visibility timeout ends
    body: str


@lru_cache(maxsize=4)
def _clients(connection: AwsConnection) -> ClientFactory:
    return ClientFactory(connection)


@lru_cache(maxsize=256)
def _queue_url(connection: AwsConnection, region: str, name: str) -> str:
    with aws_call("sqs:GetQueueUrl"):
        response = _clients(connection).client("sqs", region).get_queue_url(QueueName=name)
    return str(response["QueueUrl"])


def watch_queue_url(connection: AwsConnection, target: AwsTarget) -> str:
    """The URL of the profile's watch queue (cached: it never changes while the queue exists)."""
    return _queue_url(connection, target.region, policies.watch_name(target.role_name))


def messages_receive(
    connection: AwsConnection,
    *,
    region: str,
    queue_url: str,
    wait_seconds: int,
    max_messages: int = MAX_MESSAGES_PER_RECEIVE,
    visibility_timeout: int = 30,
) -> list[ReceivedMessage]:
    """Long-poll one batch; empty when none came.

    A message stays invisible for `visibility_timeout` seconds and reappears unless deleted, so
    nothing is lost if the caller dies before storing it.
    """
    sqs = _clients(connection).client("sqs", region)
    with aws_call("sqs:ReceiveMessage"):
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(max_messages, MAX_MESSAGES_PER_RECEIVE)),
            WaitTimeSeconds=max(0, min(wait_seconds, MAX_WAIT_SECONDS)),
            VisibilityTimeout=visibility_timeout,
        )
    return [
        {
            "message_id": message["MessageId"],
            "receipt_handle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
        }
        for message in response.get("Messages", [])
    ]


def messages_delete(
    connection: AwsConnection, *, region: str, queue_url: str, receipt_handles: list[str]
) -> dict[int, str]:
    """Delete messages ten to a call (DeleteMessageBatch) → {index in `receipt_handles`: why
    SQS kept it} for the entries it refused; a whole call that fails raises AwsError.

    A message not deleted reappears after its visibility timeout: the caller must recognise it.
    """
    sqs = _clients(connection).client("sqs", region)
    failed: dict[int, str] = {}
    for start in range(0, len(receipt_handles), MAX_MESSAGES_PER_DELETE):
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": handle}
            for index, handle in enumerate(
                receipt_handles[start : start + MAX_MESSAGES_PER_DELETE], start
            )
        ]
        with aws_call("sqs:DeleteMessage"):  # IAM authorises the batch as DeleteMessage
            response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        for entry in response.get("Failed", []):
            failed[int(entry["Id"])] = f"{entry.get('Code', '?')}: {entry.get('Message', '')}"
    return failed
