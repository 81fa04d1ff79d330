"""Vendors' invitations: secret links by e-mail (one at a time or from a CSV), and accepting one,
which creates the invited annotator's account."""

import csv
import io
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower
from django.utils.crypto import get_random_string

from accounts.models import Role, User, Vendor
from config.exceptions import Conflict, Gone, InvalidInput, NotAllowed, NotFound

from .. import clock
from ..models import Invitation

MAX_INVITATIONS_PER_REQUEST = 500


def _invitation_lifetime() -> timedelta:
    return timedelta(days=getattr(settings, "PREFLAB_INVITATION_DAYS", 14))


def _may_invite(user: User, vendor: Vendor) -> None:
    if user.is_researcher:
        return
    if not (user.is_vendor_manager and user.vendor_id == vendor.pk):
        raise NotAllowed("Only this vendor's managers can invite its candidates.")


def invitations_create(
    *, invited_by: User, vendor: Vendor, emails: list[str], now: datetime | None = None
) -> list[Invitation]:
    """Invite people by e-mail: one secret link each. All addresses check out, or nothing is created.

    An address already invited to this vendor (and not expired) keeps its link; an address that
    already has an account is refused.
    """
    _may_invite(invited_by, vendor)
    now = now or clock.now()
    cleaned: list[str] = []
    errors: list[str] = []
    for position, raw in enumerate(emails, start=1):
        email = (raw or "").strip()
        try:
            validate_email(email)
        except DjangoValidationError:
            errors.append(f"entry {position}: {email!r} is not an e-mail address")
            continue
        if email.lower() not in {e.lower() for e in cleaned}:
            cleaned.append(email)
    if not cleaned and not errors:
        raise InvalidInput("Give at least one e-mail address to invite.", field="emails")
    if len(cleaned) > MAX_INVITATIONS_PER_REQUEST:
        raise InvalidInput(f"At most {MAX_INVITATIONS_PER_REQUEST} invitations at a time.", field="emails")
    taken = set(
        User.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=[e.lower() for e in cleaned])
        .values_list("email_lower", flat=True)
    )
    errors += [f"{email} already has a Preflab account" for email in cleaned if email.lower() in taken]
    if errors:
        raise InvalidInput(
            f"{len(errors)} address{'es' if len(errors) > 1 else ''} could not be invited, so none was: "
            + "; ".join(errors[:5]),
            field="emails",
            extra={"errors": errors},
        )
    invitations = []
    with transaction.atomic():
        for email in cleaned:
            live = (
                Invitation.objects.filter(
                    vendor=vendor, email__iexact=email, accepted_at__isnull=True, expires_at__gt=now
                )
                .order_by("-created_at")
                .first()
            )
            invitations.append(
                live
                or Invitation.objects.create(
                    vendor=vendor,
                    email=email,
                    token=get_random_string(40),
                    invited_by=invited_by,
                    created_at=now,
                    expires_at=now + _invitation_lifetime(),
                )
            )
    return invitations


def invitations_from_csv(*, invited_by: User, vendor: Vendor, source: bytes | str, now: datetime | None = None):
    """Invite every address in a CSV: a column named "email" if there is a header, else the first column."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("The CSV file must be UTF-8 text.", field="file") from None
    source = source.lstrip("\ufeff")
    rows = [row for row in csv.reader(io.StringIO(source)) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput("The CSV file has no e-mail addresses.", field="file")
    header = [cell.strip().lower() for cell in rows[0]]
    column = 0
    if "email" in header or "e-mail" in header:
        column = header.index("email") if "email" in header else header.index("e-mail")
        rows = rows[1:]
    emails = [row[column] if column < len(row) else "" for row in rows]
    return invitations_create(invited_by=invited_by, vendor=vendor, emails=emails, now=now)


def invitation_accept(*, token: str, username: str, password: str, now: datetime | None = None) -> User:
    """Create the invited person's account: an annotator of the inviting vendor, a candidate until they pass."""
    now = now or clock.now()
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("vendor").filter(token=token).first()
        if invitation is None:
            raise NotFound("This invitation link is not valid; ask your vendor manager for a new one.", field="token")
        if invitation.accepted_at is not None:
            raise Conflict("This invitation was already used to create an account; log in instead.", field="token")
        if invitation.expires_at < now:
            raise Gone(
                f"This invitation expired on {invitation.expires_at:%Y-%m-%d}; ask your vendor manager for a new one.",
                field="token",
            )
        username = (username or "").strip()
        try:
            User.username_validator(username)
        except DjangoValidationError:
            raise InvalidInput("Choose a username of letters, digits and @ . + - _ only.", field="username") from None
        if not username or len(username) > 150:
            raise InvalidInput("Choose a username of 1 to 150 characters.", field="username")
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict(f"The username {username!r} is taken; choose another.", field="username")
        user = User(username=username, email=invitation.email, role=Role.ANNOTATOR, vendor=invitation.vendor)
        try:
            validate_password(password, user)
        except DjangoValidationError as exc:
            raise InvalidInput(" ".join(exc.messages), field="password") from None
        user.set_password(password)
        user.save()
        invitation.accepted_at = now
        invitation.user = user
        invitation.save(update_fields=["accepted_at", "user"])
        return user
