"""The signing key (approvals/signatures.py): what it signs only it could have signed, old keys
keep verifying after a rotation, and a verifier needs nothing but the public keys."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from approvals import signatures
from tests.deploy.test_production_settings import manage, production_env

PAYLOAD = {"request": "r-1", "decision": "approve", "n": 3, "text": "grüße"}


@pytest.fixture
def two_keys(settings):
    old, new = signatures.key_generate(), signatures.key_generate()
    settings.SIGNING_KEYS = [old]
    settings.SIGNING_PUBLIC_KEYS = []
    return old, new


def test_a_signature_verifies_only_for_its_purpose_payload_and_key(two_keys):
    signature = signatures.sign("approval", PAYLOAD)

    assert signatures.verify("approval", PAYLOAD, signature.key_id, signature.value)
    assert not signatures.verify("approval", {**PAYLOAD, "n": 4}, signature.key_id, signature.value)
    assert not signatures.verify("checkpoint", PAYLOAD, signature.key_id, signature.value)
    assert not signatures.verify("approval", PAYLOAD, "0" * 16, signature.value)
    assert not signatures.verify("approval", PAYLOAD, signature.key_id, "")
    assert not signatures.verify("approval", PAYLOAD, signature.key_id, "not base64!")
    forged = base64.b64encode(bytes(64)).decode()
    assert not signatures.verify("approval", PAYLOAD, signature.key_id, forged)


def test_key_order_does_not_change_what_is_signed(two_keys):
    reordered = dict(reversed(list(PAYLOAD.items())))
    signature = signatures.sign("approval", PAYLOAD)

    assert signatures.verify("approval", reordered, signature.key_id, signature.value)


def test_rotation_signs_with_the_newest_key_and_old_signatures_still_verify(two_keys, settings):
    old, new = two_keys
    before = signatures.sign("approval", PAYLOAD)

    settings.SIGNING_KEYS = [new, old]
    after = signatures.sign("approval", PAYLOAD)

    assert after.key_id != before.key_id
    assert signatures.public_keys()[0].key_id == after.key_id
    assert signatures.public_keys()[0].signs
    for signature in (before, after):
        assert signatures.verify("approval", PAYLOAD, signature.key_id, signature.value)


def test_a_retired_key_verifies_from_its_public_half_alone(two_keys, settings):
    _old, new = two_keys
    before = signatures.sign("approval", PAYLOAD)
    retired_public = signatures.public_keys()[0].public_key

    settings.SIGNING_KEYS = [new]
    assert not signatures.verify("approval", PAYLOAD, before.key_id, before.value)

    settings.SIGNING_PUBLIC_KEYS = [retired_public]
    assert signatures.verify("approval", PAYLOAD, before.key_id, before.value)
    assert [key.signs for key in signatures.public_keys()] == [True, False]


def test_the_exported_public_key_alone_verifies_the_documented_message(two_keys):
    signature = signatures.sign("approval", PAYLOAD)
    exported = signatures.public_keys()[0]

    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(exported.public_key))
    message = (
        b"breakglass-portal/v1\napproval\n"
        + json.dumps(PAYLOAD, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    public_key.verify(base64.b64decode(signature.value), message)  # raises if it does not


def test_signing_keys_command_lists_public_keys_and_never_the_private_one(tmp_path):
    key = signatures.key_generate()
    result = manage("signing_keys", env={"BREAKGLASS_SIGNING_KEY": key}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [entry["algorithm"] for entry in listed["keys"]] == ["Ed25519"]
    assert listed["keys"][0]["signs"] is True
    assert key not in result.stdout + result.stderr


def test_signing_keys_generate_prints_a_key_the_setting_accepts(tmp_path):
    generated = manage("signing_keys", "--generate", env={}, tmp_path=tmp_path)
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.strip().splitlines()[-1]

    result = manage("check", env={"BREAKGLASS_SIGNING_KEY": key}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr


def test_development_generates_a_key_under_var_and_keeps_it(tmp_path):
    first = manage("signing_keys", env={}, tmp_path=tmp_path)
    second = manage("signing_keys", env={}, tmp_path=tmp_path)

    assert first.returncode == 0, first.stderr
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_production_refuses_to_start_without_a_signing_key(tmp_path):
    env = {k: v for k, v in production_env().items() if k != "BREAKGLASS_SIGNING_KEY"}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "BREAKGLASS_SIGNING_KEY (or BREAKGLASS_SIGNING_KEY_FILE) is required" in result.stderr


def test_production_takes_the_signing_key_from_a_file(tmp_path):
    env = production_env()
    key_file = tmp_path / "signing"
    key_file.write_text(env.pop("BREAKGLASS_SIGNING_KEY"))
    env["BREAKGLASS_SIGNING_KEY_FILE"] = str(key_file)

    assert manage("check", env=env, tmp_path=tmp_path).returncode == 0


def test_a_malformed_signing_key_stops_start_up_naming_the_variable_not_the_key(tmp_path):
    good, malformed = signatures.key_generate(), "c2hvcnQta2V5LWxlYWtlZA"

    result = manage(
        "check", env={"BREAKGLASS_SIGNING_KEY": f"{good},{malformed}"}, tmp_path=tmp_path
    )

    assert result.returncode != 0
    assert "BREAKGLASS_SIGNING_KEY: key 2 of 2 is not an Ed25519 key" in result.stderr
    assert malformed not in result.stderr + result.stdout
