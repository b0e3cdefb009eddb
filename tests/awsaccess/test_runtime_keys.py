"""The principals' secrets file as the worker reads it: every way it can be wrong is one clear
MissingAwsKeys (which activation and revocation both handle), never a parser's exception, and
never a message that quotes the file."""

import json

import pytest

from awsaccess.runtime import MissingAwsKeys, principal_keys

ARN = "arn:aws:iam::123456789012:user/breakglass-principal"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
NOT_JSON = r"^the principals' keys file is not valid JSON$"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^the principals' keys file cannot be read \(No such file or directory\)$"),
        (f'{{"{ARN}": {{"secret_access_key": "{SECRET}"', NOT_JSON),
        (b"\xff\xfe" + SECRET.encode(), NOT_JSON),
        ("[]", r"^no keys configured for break-glass principal arn:aws:iam::"),
        (json.dumps({"other": {}}), r"^no keys configured for break-glass principal arn:aws:iam::"),
        (json.dumps({ARN: SECRET}), r"need an access_key_id and a secret_access_key$"),
        (json.dumps({ARN: {"secret_access_key": SECRET}}), r"need an access_key_id and a secret"),
    ],
    ids=["missing", "cut short", "not text", "a list", "no entry", "a string", "no key id"],
)  # fmt: skip
def test_every_broken_keys_file_is_one_clear_error_that_quotes_nothing(
    settings, tmp_path, content, message
):
    path = tmp_path / "principals.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    settings.AWS_PRINCIPAL_CREDENTIALS_FILE = str(path)

    with pytest.raises(MissingAwsKeys, match=message) as raised:
        principal_keys(ARN)

    assert SECRET not in str(raised.value)
    assert raised.value.__cause__ is None  # the parser's error (and its excerpt) is not chained


def test_a_good_entry_gives_the_keys(settings, tmp_path):
    path = tmp_path / "principals.json"
    path.write_text(
        json.dumps({ARN: {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}})
    )
    settings.AWS_PRINCIPAL_CREDENTIALS_FILE = str(path)

    keys = principal_keys(ARN)

    assert (keys.access_key_id, keys.secret_access_key) == ("AKIAEXAMPLE", SECRET)
