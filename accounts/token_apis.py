"""API tokens: obtain one with a password (behind the log-in lock-out), rotate your own, and, for
admins, revoke someone's."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from . import lockout
from .models import User
from .permissions import IsAdmin
from .tokens import token_expires_at, token_for_login, token_rotate, tokens_revoke


class TokenAnswerSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class LoginLockedOut(exceptions.Throttled):
    """429 with Retry-After; the message says when to try again."""

    def __init__(self, wait: int):
        super().__init__(wait=None, detail=lockout.lockout_message(wait))
        self.wait = wait


def _token_answer(token) -> Response:
    return Response(TokenAnswerSerializer({"token": token.key, "expires_at": token_expires_at(token)}).data)


class LoginLockoutThrottle(BaseThrottle):
    """The log-in lock-out as a DRF throttle: a request is refused while its username or its address
    is locked out (accounts.backends counts the failures: only a failed password counts)."""

    def allow_request(self, request: Request, view) -> bool:
        # A body that is not an object (a JSON list) names no one; the serializer refuses it after.
        username = str(request.data.get("username", "")) if hasattr(request.data, "get") else ""
        self.seconds = lockout.retry_after(username=username, address=lockout.client_address(request))
        return self.seconds is None

    def wait(self) -> int | None:
        return self.seconds


class TokenObtainView(ObtainAuthToken):
    throttle_classes = (LoginLockoutThrottle,)

    def throttled(self, request: Request, wait: float) -> None:
        raise LoginLockedOut(int(wait))

    @extend_schema(request=AuthTokenSerializer, responses={200: TokenAnswerSerializer}, auth=[])
    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)  # a wrong password is counted by accounts.backends
        return _token_answer(token_for_login(user=serializer.validated_data["user"]))


@extend_schema(request=None, responses={200: TokenAnswerSerializer})
@api_view(["POST"])
def token_rotate_own(request: Request) -> Response:
    """A new token for the person asking; the token used until now stops working at once."""
    return _token_answer(token_rotate(user=request.user))


@extend_schema(request=None, responses={204: None})
@api_view(["DELETE"])
@permission_classes([IsAdmin])
def token_revoke(request: Request, user_id: int) -> Response:
    """Admins: remove a person's API token (they get a new one by logging in with their password)."""
    tokens_revoke(users=[get_object_or_404(User, pk=user_id)])
    return Response(status=status.HTTP_204_NO_CONTENT)
