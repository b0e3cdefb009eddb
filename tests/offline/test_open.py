"""Opening the kit with no portal at all: two shares open it, one share or shares of two kits
do not, a tampered kit does not, and in each refusal AWS hears nothing."""

import json

import pytest

from approvals.models import OfflineKit

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
