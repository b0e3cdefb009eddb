"""Who a person is across accounts: two accounts carrying the same person identifier are one
person, so they are never the requester and an approver, nor two approvers, of one request."""

from django.contrib.auth.models import User
from django.db import transaction

from approvals.errors import RequestInvalid
from approvals.models import PersonIdentity, person_identifier_normalise
from approvals.models.administration import PERSON_IDENTIFIER_MAX_LENGTH


def person_identifier_set(*, user: User, identifier: str) -> PersonIdentity:
    """Give the account its person identifier (replacing any). The change is on the record, with
    an alarm when the account approves anything (administration signals)."""
    clean = person_identifier_normalise(identifier or "")
    if not clean:
        raise RequestInvalid(
            "A person identifier cannot be empty.",
            fields={"person": ["a person identifier cannot be empty"]},
        )
    if len(clean) > PERSON_IDENTIFIER_MAX_LENGTH:
        raise RequestInvalid(
            "The person identifier is too long.",
            fields={
                "person": [f"person must be at most {PERSON_IDENTIFIER_MAX_LENGTH} characters"]
            },
        )
    with transaction.atomic():
        person = PersonIdentity.objects.select_for_update().filter(user=user).first()
        if person is None:
            return PersonIdentity.objects.create(user=user, identifier=clean)
        if person.identifier != clean:
            person.identifier = clean
            person.save()
    return person
