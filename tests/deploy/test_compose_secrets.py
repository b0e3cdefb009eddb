"""Who holds which AWS key in docker-compose.yml, read as an attacker who has taken one container.

The web tier faces the internet: it must hold no AWS key at all (it never calls AWS with one;
it only enqueues tasks). Beat only sends task messages. The workers (the main one and the one
reserved for grants) need the broker's and the break-glass principal's keys. The provisioner's
keys (admin in the sandbox) live only in a one-off service that `docker-compose run --rm
provision SLUG` starts and removes.
"""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE_VARIABLES = {
    "broker": "BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE",
    "principal": "BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE",
    "provisioner": "BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE",
}
# Volumes that hold key files: the sandbox's own state (every identity's keys) and the copies.
KEY_VOLUMES = {"sandbox-state", "worker-aws-keys", "provisioner-aws-keys"}


def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def identities_held(service: dict[str, Any]) -> set[str]:
    """The AWS identities whose keys a container can read: named by a key-file variable, or any
    volume holding key files (a mounted key file is held even if no variable names it)."""
    environment = service.get("environment") or {}
    held = {name for name, variable in KEY_FILE_VARIABLES.items() if environment.get(variable)}
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0]
        if "sandbox-state" in source:
            held |= {"broker", "principal", "provisioner"}
        elif "worker-aws-keys" in source:
            held |= {"broker", "principal"}
        elif "provisioner-aws-keys" in source:
            held.add("provisioner")
    if any(name.startswith("AWS_") for name in environment):  # boto3's own variables
        held.add("environment credentials")
    return held


def long_running(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") != "no" and not service.get("profiles")


def test_the_web_tier_holds_no_aws_key():
    assert identities_held(services()["web"]) == set()


def test_beat_holds_no_aws_key_because_the_worker_runs_what_it_schedules():
    assert identities_held(services()["beat"]) == set()


def test_only_the_workers_hold_the_broker_and_principal_keys():
    holders = {
        name
        for name, service in services().items()
        if name != "sandbox" and identities_held(service) & {"broker", "principal"}
    }

    # sandbox-keys is the one-off that copies the sandbox's keys to the workers' volume.
    assert holders == {"worker", "worker-grants", "sandbox-keys"}
    assert identities_held(services()["worker"]) == {"broker", "principal"}
    assert identities_held(services()["worker-grants"]) == {"broker", "principal"}
    assert not long_running(services()["sandbox-keys"])


def test_the_provisioner_keys_are_never_in_a_long_running_service():
    for name, service in services().items():
        if name == "sandbox":  # the stand-in for AWS made these keys; it is not the portal
            continue
        if "provisioner" in identities_held(service):
            assert not long_running(service), name


def test_provisioning_is_a_one_off_command():
    provision = services()["provision"]

    assert provision["profiles"] == ["provision"]
    assert provision["restart"] == "no"
    assert provision["entrypoint"] == ["python", "manage.py", "provision_profile"]
    assert identities_held(provision) == {"provisioner"}
