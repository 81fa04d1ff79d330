"""API tokens (DRF's authtoken): one per person, valid for PREFLAB_TOKEN_MAX_AGE_DAYS from when it was
made, replaced by rotation, removed by revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from .models import User


def token_expires_at(token: Token) -> datetime:
    return token.created + timedelta(days=settings.PREFLAB_TOKEN_MAX_AGE_DAYS)


def token_is_expired(token: Token, *, now: datetime | None = None) -> bool:
    return (now or timezone.now()) >= token_expires_at(token)


@transaction.atomic
def token_for_login(*, user: User) -> Token:
    """The person's token after a log-in with a password: the current one, or a new one when it expired."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None and not token_is_expired(token):
        return token
    return token_rotate(user=user)


@transaction.atomic
def token_rotate(*, user: User) -> Token:
    """A new token for the person; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


@transaction.atomic
def tokens_revoke(*, users) -> int:
    """Remove these people's tokens (they log in again for a new one); the number removed."""
    deleted, _ = Token.objects.filter(user__in=users).delete()
    return deleted
