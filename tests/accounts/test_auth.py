"""Log-in and API tokens (issue 12): password rules, the lock-out on the token endpoint and the log-in
page, token expiry, rotation and revocation, and 401 for missing credentials."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import lockout
from accounts.models import Role, User
from annotation.demo import DEMO_PASSWORD
from tests.factories import AnnotatorFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_four_validators_refuse_a_weak_password_and_accept_the_demo_and_test_ones():
    with pytest.raises(ValidationError) as refused:
        validate_password("12345678", User(username="ada"))
    messages = " ".join(refused.value.messages)
    assert "too common" in messages and "entirely numeric" in messages
    with pytest.raises(ValidationError, match="too similar to the username"):
        validate_password("ada-lovelace-1815", User(username="ada-lovelace"))
    with pytest.raises(ValidationError, match="too short"):
        validate_password("k9#xQ", User(username="ada"))
    for username in ("annotator", "researcher", "manager-acme", "candidate"):
        validate_password(DEMO_PASSWORD, User(username=username))
    validate_password("pw-for-tests", User(username="user1"))


def test_an_invitation_refuses_a_common_password(client):
    from quizzes import services
    from tests.factories import VendorManagerFactory

    manager = VendorManagerFactory()
    (invitation,) = services.invitations_create(invited_by=manager, vendor=manager.vendor, emails=["ada@example.org"])
    answer = APIClient().post(
        "/api/invitations/accept/",
        {"token": invitation.token, "username": "ada", "password": "12345678"},
        format="json",
    )
    assert answer.status_code == 400 and "too common" in str(answer.json())


def test_missing_credentials_answer_401_with_www_authenticate():
    answer = APIClient().get("/api/batches/")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"
    wrong = APIClient(headers={"Authorization": "Token not-a-token"}).get("/api/me/")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"] == "Token"


def token_of(username: str, password: str = "pw-for-tests", address: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_the_token_endpoint_locks_out_after_repeated_failures_and_says_when_to_retry(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES = 5
    settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS = 60
    UserFactory(username="ada")
    for _ in range(5):
        assert token_of("ada", "wrong").status_code == 400
    locked = token_of("ada")  # the right password, but too late
    assert locked.status_code == 429
    wait = int(locked["Retry-After"])
    assert 55 <= wait <= 60
    assert locked.json()["detail"] == f"Too many failed log-ins; try again in {wait} seconds."
    # Another person from another address is not locked out by ada's failures.
    UserFactory(username="grace")
    assert token_of("grace", address="10.0.0.2").status_code == 200


def test_the_lock_out_ends_when_the_failures_leave_the_window(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES = 3
    settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS = 60
    for second in (0, 10, 20):
        lockout.failure_record(username="ada", address="10.0.0.1", now=1000.0 + second)
    assert lockout.retry_after(username="ADA", address="10.0.0.9", now=1030.0) == 30  # usernames match case-blind
    assert lockout.retry_after(username="ada", address="10.0.0.1", now=1060.5) is None


def test_many_usernames_from_one_address_lock_that_address(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    for n in range(4):
        assert token_of(f"guess{n}", "wrong").status_code == 400
    assert token_of("someone-else", "wrong").status_code == 429
    assert token_of("someone-else", "wrong", address="10.0.0.2").status_code == 400


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(settings, rf):
    request = rf.get("/", REMOTE_ADDR="172.17.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert lockout.client_address(request) == "172.17.0.1"
    settings.PREFLAB_NUM_PROXIES = 1
    assert lockout.client_address(request) == "203.0.113.7"  # not the address the client made up


def test_the_login_page_locks_out_with_a_message_that_says_when_to_retry(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES = 3
    settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS = 300
    UserFactory(username="ada")
    browser = Client()
    for _ in range(3):
        wrong = browser.post("/login/", {"username": "ada", "password": "wrong"})
        assert wrong.status_code == 200 and "do not match" in wrong.content.decode()
    locked = browser.post("/login/", {"username": "ada", "password": "pw-for-tests"})
    assert locked.status_code == 429
    assert 295 <= int(locked["Retry-After"]) <= 300
    page = locked.content.decode()
    assert "Too many failed log-ins; try again in 5 minutes." in page
    assert 'value="ada"' in page
    assert "_auth_user_id" not in browser.session
    lockout.cache.clear()
    assert browser.post("/login/", {"username": "ada", "password": "pw-for-tests"}).status_code == 302


def test_a_login_that_succeeds_does_not_count(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES = 2
    UserFactory(username="ada")
    for _ in range(5):
        assert token_of("ada").status_code == 200


def test_the_lock_out_works_on_the_redis_cache(settings, redis_url):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "preflab-test-lockout",
        }
    }
    from django.core.cache import cache

    settings.PREFLAB_LOGIN_MAX_FAILURES = 2
    username = f"ada-{timezone.now().timestamp()}"
    try:
        for _ in range(2):
            lockout.failure_record(username=username, address="10.9.9.9")
        assert lockout.retry_after(username=username, address="10.9.9.8") is not None
    finally:
        for key, _limit in lockout.failure_counters(username=username, address="10.9.9.9"):
            cache.delete(key)


def test_a_token_expires_after_its_maximum_age_and_a_new_log_in_replaces_it(settings):
    settings.PREFLAB_TOKEN_MAX_AGE_DAYS = 30
    UserFactory(username="ada")
    answer = token_of("ada").json()
    old = answer["token"]
    assert answer["expires_at"].startswith(str((timezone.now() + timedelta(days=30)).date()))
    api = APIClient(headers={"Authorization": f"Token {old}"})
    assert api.get("/api/me/").status_code == 200
    Token.objects.filter(key=old).update(created=timezone.now() - timedelta(days=30, seconds=1))
    expired = api.get("/api/me/")
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    assert expired["WWW-Authenticate"] == "Token"
    new = token_of("ada").json()["token"]
    assert new != old
    assert APIClient(headers={"Authorization": f"Token {new}"}).get("/api/me/").status_code == 200


def test_rotating_a_token_gives_a_new_one_and_ends_the_old_one():
    UserFactory(username="ada")
    old = token_of("ada").json()["token"]
    rotated = APIClient(headers={"Authorization": f"Token {old}"}).post("/api/auth/token/rotate/")
    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new != old
    assert APIClient(headers={"Authorization": f"Token {old}"}).get("/api/me/").status_code == 401
    assert APIClient(headers={"Authorization": f"Token {new}"}).get("/api/me/").json()["username"] == "ada"
    assert APIClient().post("/api/auth/token/rotate/").status_code == 401


def test_an_admin_revokes_tokens_through_the_api():
    admin = UserFactory(username="root", role=Role.ADMIN)
    annotator = AnnotatorFactory(username="ann")
    token = token_of("ann").json()["token"]
    admin_api = APIClient(headers={"Authorization": f"Token {token_of('root').json()['token']}"})
    researcher_api = APIClient()
    researcher_api.force_authenticate(UserFactory(role=Role.RESEARCHER))
    assert researcher_api.delete(f"/api/auth/tokens/{annotator.pk}/").status_code == 403
    assert admin_api.delete(f"/api/auth/tokens/{annotator.pk}/").status_code == 204
    assert APIClient(headers={"Authorization": f"Token {token}"}).get("/api/me/").status_code == 401
    assert admin_api.delete("/api/auth/tokens/999999/").status_code == 404
    assert admin.is_active


def test_an_admin_revokes_tokens_in_the_django_admin():
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    first, second, kept = AnnotatorFactory(), AnnotatorFactory(), AnnotatorFactory()
    tokens = {user.pk: Token.objects.create(user=user).key for user in (first, second, kept)}
    browser = Client()
    browser.force_login(superuser)
    answer = browser.post(
        "/admin/accounts/user/",
        {"action": "revoke_api_tokens", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    assert "Revoked 2 API tokens" in answer.content.decode()
    assert list(Token.objects.values_list("key", flat=True)) == [tokens[kept.pk]]
    assert "revoke_api_tokens" in site._registry[User].actions


def test_log_ins_go_on_when_the_cache_does_not_answer(settings):
    """Redis down: the lock-out cannot count, and log-ins work rather than fail."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    UserFactory(username="ada")
    assert token_of("ada", "wrong").status_code == 400
    assert token_of("ada").status_code == 200
    assert Client().post("/login/", {"username": "ada", "password": "pw-for-tests"}).status_code == 302


def test_an_expired_form_answers_the_styled_page():
    browser = Client(enforce_csrf_checks=True)
    answer = browser.post("/login/", {"username": "ada", "password": "whatever"})
    assert answer.status_code == 403
    assert "This form has expired" in answer.content.decode()


def test_the_django_admin_log_in_shares_the_lock_out(settings):
    settings.PREFLAB_LOGIN_MAX_FAILURES = 3
    UserFactory(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    for _ in range(3):
        assert browser.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code == 200
    refused = browser.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-for-tests"})
    assert refused.status_code == 200 and "_auth_user_id" not in browser.session  # the right password, refused
    assert token_of("root").status_code == 429  # the same count locks the other doors
    lockout.cache.clear()
    assert (
        browser.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-for-tests"}).status_code == 302
    )
