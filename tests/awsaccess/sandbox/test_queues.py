"""The sandbox's SQS used by several consumers at once while a producer sends, over HTTP, as the
watcher's receivers and deleters use it: no call fails and every message is delivered (two of
moto's deletes at once could each rebuild the queue from the same list and drop a message sent
meanwhile; this test lost some in every run before the queue's operations took turns)."""

import threading
import uuid

from botocore.exceptions import ClientError

SENT = 1000
CONSUMERS = 4
HELD = 4000  # in flight all along


def test_concurrent_receives_deletes_and_sends_neither_fail_nor_lose_a_message(aws_sandbox):
    sqs = aws_sandbox.client("sqs")
    url = sqs.create_queue(QueueName=f"busy-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # Messages in flight stay in the queue's in-flight set: every receive walks past them.
    for _ in range(HELD // 10):
        entries = [{"Id": str(n), "MessageBody": "held"} for n in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    for _ in range(HELD // 10):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
    received: set[str] = set()
    errors: list[str] = []
    sending = threading.Event()
    sending.set()

    def produce() -> None:
        producer = aws_sandbox.client("sqs")
        for start in range(0, SENT, 10):
            entries = [{"Id": str(n), "MessageBody": f"m{start + n}"} for n in range(10)]
            producer.send_message_batch(QueueUrl=url, Entries=entries)
        sending.clear()

    def consume() -> None:
        consumer = aws_sandbox.client("sqs")
        idle = 0
        while sending.is_set() or idle < 3:
            try:
                messages = consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                    "Messages", []
                )
                if messages:
                    consumer.delete_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                            for n, message in enumerate(messages)
                        ],
                    )
            except ClientError as error:
                errors.append(error.response["Error"]["Code"])
                continue
            idle = 0 if messages else idle + 1
            received.update(message["Body"] for message in messages)

    threads = [threading.Thread(target=produce)]
    threads += [threading.Thread(target=consume) for _ in range(CONSUMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert received == {f"m{n}" for n in range(SENT)}
