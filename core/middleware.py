"""The Content-Security-Policy header (Django 5.2 has none of its own): one policy for the pages, a
looser one for the API docs, whose Swagger UI and Redoc bundles inject styles and start a worker."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

API_DOCS_URL_NAMES = frozenset({"api-docs", "api-redoc"})


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            match = getattr(request, "resolver_match", None)
            if match is not None and match.url_name in API_DOCS_URL_NAMES:
                policy = settings.PREFLAB_CONTENT_SECURITY_POLICY_API_DOCS
            else:
                policy = settings.PREFLAB_CONTENT_SECURITY_POLICY
            if policy:
                response["Content-Security-Policy"] = policy
        return response
