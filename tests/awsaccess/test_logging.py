import logging

from .helpers import make_grant, s3_with


def test_credentials_never_appear_in_logs(aws_sandbox, engine, profile, caplog):
    caplog.set_level(logging.DEBUG)  # everything: botocore, urllib3, ours
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)
    engine.grant_revoke(profile.target, grant)

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "AssumeRole" in text  # botocore's DEBUG output was captured
    for secret in (
        credentials.secret_access_key,
        credentials.session_token,
        profile.principal_keys.secret_access_key,
        aws_sandbox.broker.secret_access_key,
    ):
        assert secret not in text
    for value in (credentials, profile.principal_keys, aws_sandbox.broker):
        assert "secret" not in repr(value).lower() or "secret_access_key" not in repr(value)
    assert credentials.session_token not in repr(credentials)
    assert s3_with(credentials)  # the values themselves are intact
