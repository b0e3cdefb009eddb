"""Clients from the process's one boto3 session, each signing with its own keys (sandbox over
HTTP: GetCallerIdentity answers with the identity whose keys signed the call)."""

from concurrent.futures import ThreadPoolExecutor

from awsaccess.clients import ClientFactory


def test_each_principal_s_client_calls_as_that_principal_and_the_broker_s_as_the_broker(
    aws_sandbox,
):
    first = aws_sandbox.new_user("clients-test-first")
    second = aws_sandbox.new_user("clients-test-second")
    factories = [ClientFactory(aws_sandbox.broker), ClientFactory(aws_sandbox.broker)]
    keys = [first, second] * 4

    def caller(n: int) -> str:
        # Built concurrently, from two factories, on one shared session.
        sts = factories[n % 2].client(
            "sts",
            aws_sandbox.region,
            access_key_id=keys[n].access_key_id,
            secret_access_key=keys[n].secret_access_key,
        )
        return sts.get_caller_identity()["Arn"]

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        arns = list(pool.map(caller, range(len(keys))))

    assert arns == [
        f"arn:aws:iam::{aws_sandbox.account_id}:user/clients-test-{name}"
        for name in ("first", "second") * 4
    ]
    # No key given: the connection's own (the broker's), not a principal's built before.
    broker_arn = factories[0].client("sts", aws_sandbox.region).get_caller_identity()["Arn"]
    plain = aws_sandbox.client("sts", aws_sandbox.broker)
    assert broker_arn == plain.get_caller_identity()["Arn"]
    assert broker_arn not in arns
