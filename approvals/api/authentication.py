"""Who is calling: a person (personal token or browser session) or an integration (key)."""

from dataclasses import dataclass

from django.contrib.auth.models import User
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.request import Request

from approvals.errors import NotAllowed, PortalError
from approvals.models import IntegrationKey, PersonalToken
from approvals.services import api_access


class IntegrationPrincipal:
    """request.user for an integration key: authenticated, but nobody's account."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: IntegrationKey) -> None:
        self.key = key
        self.name = key.name

    def get_username(self) -> str:
        return f"integration:{self.name}"

    def __str__(self) -> str:
        return self.get_username()


class BearerAuthentication(BaseAuthentication):
    """`Authorization: Bearer bgp_…` (personal token) or `Bearer bgi_…` (integration key)."""

    def authenticate(self, request: Request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("the bearer token must be ASCII") from None
        try:
            if secret.startswith(api_access.PERSONAL_TOKEN_PREFIX):
                token = api_access.personal_token_authenticate(token=secret)
                return token.user, token
            if secret.startswith(api_access.INTEGRATION_KEY_PREFIX):
                key = api_access.integration_key_authenticate(key=secret)
                return IntegrationPrincipal(key), key
        except PortalError as exc:
            raise AuthenticationFailed(exc.message) from None
        raise AuthenticationFailed("the bearer token is neither a bgp_ token nor a bgi_ key")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="breakglass"'


class VerifiedSessionAuthentication(SessionAuthentication):
    """The pages' own session, once its second factor is done; CSRF is enforced."""

    def authenticate(self, request: Request):
        result = super().authenticate(request)
        if result is None or not getattr(result[0], "is_verified", lambda: False)():
            return None
        return result


@dataclass(frozen=True)
class Caller:
    """The authenticated caller as views need it."""

    user: User | None  # None for an integration
    integration: IntegrationKey | None
    idempotency_id: str  # who owns an Idempotency-Key

    @property
    def name(self) -> str:
        if self.integration is not None:
            return self.integration.name
        assert self.user is not None  # a Caller is a person or an integration
        return self.user.get_username()

    def person(self, doing: str) -> User:
        """The person calling; integration keys cannot sign, so they may not `doing`."""
        if self.user is None:
            raise NotAllowed(f"integration keys cannot {doing}; a person must do it with TOTP")
        return self.user


def caller_of(request: Request) -> Caller:
    if isinstance(request.auth, IntegrationKey):
        return Caller(None, request.auth, f"integration:{request.auth.pk}")
    if not isinstance(request.user, User):
        raise NotAuthenticated("sign in or send a bearer token")
    if isinstance(request.auth, PersonalToken):
        return Caller(request.user, None, f"token:{request.auth.pk}")
    return Caller(request.user, None, f"user:{request.user.pk}")


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = BearerAuthentication
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal token (bgp_…) or an integration key (bgi_…).",
        }


class VerifiedSessionScheme(SessionScheme):
    # A dotted path, as drf-spectacular's SessionScheme declares it.
    target_class = "approvals.api.authentication.VerifiedSessionAuthentication"
