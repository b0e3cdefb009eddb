"""The approvals app's one exception hierarchy; surfaces translate it into their error shapes."""


class PortalError(Exception):
    """A refusal the caller can act on. `code` is stable for machines, `message` for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields: dict[str, list[str]] = fields or {}


class RequestInvalid(PortalError):
    code = "invalid"


class NotFound(PortalError):
    code = "not_found"


class NotAllowed(PortalError):
    code = "not_allowed"


class SignatureRefused(PortalError):
    """An approval, rejection or signed action was refused (rule or OTP)."""

    code = "signature_refused"


class IllegalTransition(PortalError):
    code = "illegal_transition"


class StaleTransition(PortalError):
    """Someone else changed the request's status first."""

    code = "conflict"


class IdempotencyConflict(PortalError):
    """The same Idempotency-Key was sent with a different body."""

    code = "idempotency_conflict"
