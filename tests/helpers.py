"""Small helpers shared by the API and browser tests."""

from django.test import Client
from rest_framework.test import APIClient


def client_for(user) -> APIClient:
    """An API client authenticated as `user`."""
    client = APIClient()
    client.force_authenticate(user)
    return client


def page_client_for(user) -> Client:
    """A page (not API) client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client


def rate(annotator, assignment, *, choose="a", strength="better", safety="", seconds_spent=None, key=None):
    """Submit a rating of the assignment's pair through the service, choosing response a or b."""
    from annotation import services

    comparison = assignment.comparison
    return services.rating_submit(
        annotator=annotator,
        assignment_id=assignment.pk,
        chosen_response_id=comparison.response_a_id if choose == "a" else comparison.response_b_id,
        strength=strength,
        safety_label=safety,
        seconds_spent=seconds_spent,
        idempotency_key=key or f"k-{assignment.pk}",
    )


def log_in(page, live_server, username: str) -> None:
    """Log in through the login page (factory users' password) and wait for the landing page."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def migrate_to(targets):
    """Migrate the test database to `targets` ([(app, migration or None)]); the executor, reloaded."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor
