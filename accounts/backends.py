"""Password log-ins everywhere (the log-in page, the token endpoint, the Django admin) pass this gate
and the failure signal, so the lock-out covers every door: a locked-out username or address is
refused before its password is checked, and every failed log-in is counted.

The gate authenticates nobody itself: it comes before Django's ModelBackend in
AUTHENTICATION_BACKENDS and either refuses (PermissionDenied stops `authenticate()`) or lets
ModelBackend check the password, so sessions keep naming ModelBackend. It has no `get_user`, so
nothing logs anyone in through it (`Client.force_login` picks ModelBackend)."""

from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from . import lockout


class LoginLockoutGate:
    def authenticate(self, request, username=None, password=None, **kwargs) -> None:
        # No request (Client.login, a shell): nothing to count by; the log-in pages always pass one.
        if request is not None and lockout.retry_after(
            username=str(username or ""), address=lockout.client_address(request)
        ):
            raise PermissionDenied("Too many failed log-ins.")  # authenticate() refuses, counts it failed
        return None


@receiver(user_login_failed, dispatch_uid="accounts.lockout.count_failure")
def count_failure(sender, credentials: dict, request=None, **kwargs) -> None:
    if request is not None:
        lockout.failure_record(username=str(credentials.get("username", "")), address=lockout.client_address(request))
