"""Opening the kit with no portal at all: two shares open it, one share or shares of two kits
do not, a tampered kit does not, and in each refusal AWS hears nothing."""

import configparser
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from approvals.models import OfflineKit
from tests.offline.conftest import custodian_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_custodians_shares_open_the_kit_and_the_credentials_work(kits):
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"

    alice, carol = directory / "share-alice.txt", directory / "share-carol.txt"
    credentials = kits.opened(kit_file, alice, carol)

    assert set(credentials) == {
        "access_key_id", "secret_access_key", "session_token", "expiration", "region",
        "endpoint_url",
    }  # fmt: skip
    assert credentials["region"] == kits.profile.region
    buckets = kits.s3(credentials).list_buckets()["Buckets"]
    assert buckets
    assert OfflineKit.objects.get(pk=kit_id).access_key_id != credentials["access_key_id"]


def _refused(done, code: str) -> str:
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert not done.stdout  # no credentials
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"breakglass: {code}: "), done.stderr
    return last


def test_one_share_or_shares_of_two_kits_open_nothing_and_aws_hears_nothing(kits):
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"
    other_id, other_dir = kits.create(profile_slug=kits.second_profile().slug, out="second")
    key_id = OfflineKit.objects.get(pk=kit_id).access_key_id

    alone = kits.open(kit_file, directory / "share-alice.txt")
    mixed = kits.open(kit_file, directory / "share-alice.txt", other_dir / "share-bob.txt")
    typed = kits.words(other_dir / "share-bob.txt", "other-bob")
    mixed_typed = kits.open(kit_file, directory / "share-alice.txt", typed)
    twice = kits.open(kit_file, directory / "share-alice.txt", directory / "share-alice.txt")

    assert "needs 2 custodians' shares" in _refused(alone, "too_few_shares")
    assert f"share of kit {other_id}, not of kit {kit_id}" in _refused(mixed, "wrong_kit")
    assert "share of another kit" in _refused(mixed_typed, "wrong_kit")
    assert twice.returncode == 2 and "breakglass: share_repeated: " in twice.stderr
    assert kits.calls_with_key(key_id) == []  # AWS never saw the kit's key
    # The search would see an opening: two of this kit's shares do reach AWS with its key.
    kits.opened(kit_file, directory / "share-alice.txt", directory / "share-bob.txt")
    assert [call["eventName"] for call in kits.calls_with_key(key_id)] == ["AssumeRole"]


def test_the_custodians_machine_has_none_of_the_portal(tmp_path):
    """The control for every opening here: in a custodian's environment, the portal's code (and
    its database and broker drivers) cannot be imported, so an opening cannot lean on them."""
    for module in ("django", "approvals", "psycopg"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            env=custodian_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0 and "the portal is down" in done.stderr, module


def test_words_typed_from_paper_open_the_kit_like_the_printed_page(kits):
    kit_id, directory = kits.create()
    typed = kits.words(directory / "share-bob.txt", "bob")

    alice = directory / "share-alice.txt"
    credentials = kits.opened(directory / f"kit-{kit_id}.json", alice, typed)

    assert kits.s3(credentials).list_buckets()["Buckets"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("endpoint_url", "http://127.0.0.1:9/"),  # credentials sent to someone else's endpoint
        ("role_arn", "arn:aws:iam::123456789012:role/breakglass-other"),
        ("region", "us-east-1"),
        ("custodians", ["mallory", "bob", "carol"]),
    ],
)
def test_a_tampered_kit_is_refused_before_any_aws_call(kits, field, value):
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"
    document = json.loads(kit_file.read_text())
    document[field] = value
    kit_file.write_text(json.dumps(document))
    key_id = document["access_key_id"]

    done = kits.open(kit_file, directory / "share-alice.txt", directory / "share-bob.txt")

    message = _refused(done, "kit_altered")
    assert "nothing was sent to AWS" in message
    assert kits.calls_with_key(key_id) == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("endpoint_url", "http://127.0.0.1:9/"),
        ("region", "us-east-1"),
        ("max_session_seconds", 43200),
    ],
)
def test_a_tampered_kit_opened_with_words_typed_from_paper_is_refused(kits, field, value):
    """Typed words carry no fingerprint: the seal's associated data is what binds the kit's
    header (where the credentials go, which region, how long a session) to its secrets."""
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"
    document = json.loads(kit_file.read_text())
    document[field] = value
    kit_file.write_text(json.dumps(document))
    typed = [kits.words(directory / f"share-{name}.txt", name) for name in ("alice", "bob")]

    done = kits.open(kit_file, *typed)

    assert "nothing was sent to AWS" in _refused(done, "kit_altered")
    assert kits.calls_with_key(document["access_key_id"]) == []


def test_a_tampered_seal_is_refused_before_any_aws_call(kits):
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"
    document = json.loads(kit_file.read_text())
    ciphertext = document["sealed"]["ciphertext"]
    document["sealed"]["ciphertext"] = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    kit_file.write_text(json.dumps(document))
    # The share pages carry the fingerprint of the kit as cut: bare words, so the seal itself is
    # what refuses.
    bare = [kits.words(directory / f"share-{name}.txt", name) for name in ("alice", "bob")]

    done = kits.open(kit_file, *bare)

    _refused(done, "kit_altered")
    assert kits.calls_with_key(document["access_key_id"]) == []


def test_the_session_cannot_outlast_the_roles_longest_session(kits):
    kit_id, directory = kits.create()
    shares = (directory / "share-alice.txt", directory / "share-bob.txt")

    done = kits.open(directory / f"kit-{kit_id}.json", *shares, args=("--minutes", "61"))

    assert done.returncode == 2
    assert "--minutes must be 15 to 60" in done.stderr


def test_a_role_whose_longest_session_was_shortened_since_the_kit_was_made_says_so(kits):
    iam = kits.sandbox.client("iam", region_name="us-east-1")
    role_name = kits.profile.role_arn.rsplit("/", 1)[1]
    iam.update_role(RoleName=role_name, MaxSessionDuration=7200)
    kits.profile.role_max_session_seconds = 7200
    kits.profile.save()
    kit_id, directory = kits.create()  # the kit remembers 2 h
    iam.update_role(RoleName=role_name, MaxSessionDuration=3600)  # an administrator shortens it
    shares = (directory / "share-alice.txt", directory / "share-bob.txt")

    done = kits.open(directory / f"kit-{kit_id}.json", *shares, args=("--minutes", "120"))

    message = _refused(done, "aws_refused")
    assert "ValidationError" in message and "DurationSeconds" in message
    assert "The role no longer allows 120 minutes" in message
    assert "smaller --minutes" in message and "rotated" not in message
    assert kits.opened(directory / f"kit-{kit_id}.json", *shares)["session_token"]  # 60 min


def _working(kits, access_key_id: str, secret: str, token: str) -> bool:
    credentials = {
        "access_key_id": access_key_id,
        "secret_access_key": secret,
        "session_token": token,
        "region": kits.profile.region,
        "endpoint_url": kits.sandbox.endpoint_url,
    }
    return bool(kits.s3(credentials).list_buckets()["Buckets"])


def _opened_as(kits, output_format: str, *, out: str, profile_slug: str | None = None) -> str:
    """A kit of its own (an MFA code opens one session) opened in this format → stdout."""
    kit_id, directory = kits.create(out=out, profile_slug=profile_slug)
    shares = (directory / "share-alice.txt", directory / "share-bob.txt")
    done = kits.open(directory / f"kit-{kit_id}.json", *shares, args=("--format", output_format))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_env_profile_and_credential_process_formats_carry_working_credentials(kits):
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in _opened_as(kits, "env", out="env").splitlines()
    )
    env = {name: shlex.split(value)[0] for name, value in exported.items()}
    profile = configparser.ConfigParser()
    profile.read_string(
        _opened_as(kits, "profile", out="profile", profile_slug=kits.second_profile().slug)
    )
    [section] = profile.sections()
    process = json.loads(
        _opened_as(kits, "credential-process", out="p", profile_slug=kits.second_profile().slug)
    )

    assert env["AWS_REGION"] == kits.profile.region
    assert env["AWS_ENDPOINT_URL"] == kits.sandbox.endpoint_url
    assert _working(
        kits, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]
    )
    assert profile[section]["endpoint_url"] == kits.sandbox.endpoint_url
    assert _working(
        kits,
        profile[section]["aws_access_key_id"],
        profile[section]["aws_secret_access_key"],
        profile[section]["aws_session_token"],
    )
    assert process["Version"] == 1 and process["Expiration"].endswith("Z")
    assert _working(
        kits, process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"]
    )


def test_a_second_opening_with_the_same_mfa_code_is_told_to_wait_for_the_next(kits):
    """AWS accepts an MFA code once: custodians opening twice within one 30-s step are told to
    wait, not that the kit is dead."""
    kit_id, directory = kits.create()
    kit_file = directory / f"kit-{kit_id}.json"
    shares = (directory / "share-alice.txt", directory / "share-bob.txt")
    if time.time() % 30 > 20:  # both openings must fall within one step: start a fresh one
        time.sleep(30.5 - time.time() % 30)
    step = int(time.time() // 30)

    first = kits.open(kit_file, *shares)
    again = kits.open(kit_file, *shares)

    assert int(time.time() // 30) == step, "the two openings took more than 10 s"
    assert first.returncode == 0, first.stderr
    last = _refused(again, "aws_refused")
    assert "wait for the next MFA code and run again" in last


def test_an_unwritable_record_directory_is_refused_before_any_aws_call(kits):
    kit_id, directory = kits.create()
    key_id = OfflineKit.objects.get(pk=kit_id).access_key_id
    locked = kits.root / "read-only"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root ignores the mode: a file where a directory should be
        locked.rmdir()
        locked.write_text("not a directory")

    done = kits.open(
        directory / f"kit-{kit_id}.json",
        directory / "share-alice.txt",
        directory / "share-bob.txt",
        args=("--record-dir", str(locked / "records")),
    )

    assert done.returncode == 2 and not done.stdout, done.stderr
    assert "breakglass: record_dir: cannot write the opening's record" in done.stderr
    assert "nothing was sent to AWS" in done.stderr
    assert kits.calls_with_key(key_id) == []
