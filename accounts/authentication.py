"""API authentication: DRF's token scheme with an expiry. It comes first in
DEFAULT_AUTHENTICATION_CLASSES so that a request without credentials answers 401 with
`WWW-Authenticate: Token` (DRF takes that header from the first class)."""

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .tokens import token_expires_at, token_is_expired


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_is_expired(token):
            raise exceptions.AuthenticationFailed(
                f"The token expired on {token_expires_at(token):%Y-%m-%d %H:%M} UTC; "
                "get a new one from POST /api/auth/token/."
            )
        return user, token
