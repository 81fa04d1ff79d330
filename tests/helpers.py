"""Small helpers shared by the API and browser tests."""

from rest_framework.test import APIClient


def client_for(user) -> APIClient:
    """An API client authenticated as `user`."""
    client = APIClient()
    client.force_authenticate(user)
    return client


def log_in(page, live_server, username: str) -> None:
    """Log in through the login page (factory users' password) and wait for the landing page."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
