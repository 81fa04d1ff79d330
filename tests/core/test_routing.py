"""Malformed ids never reach a view: every route's id parameters only match record ids, so a
malformed one is a 404 like a missing one (issue 12), for the routes there are and those to come."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from core.routing import ID_PATTERN, RecordIdConverter
from tests.factories import AnnotatorFactory, BatchFactory
from tests.helpers import client_for, page_client_for

# Route parameters that are not record ids: file and table names, invitation tokens, DRF's format suffix.
NOT_IDS = {"name", "table", "token", "format"}


def flattened(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from flattened(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def id_parameters(route: str, entry: URLPattern) -> dict[str, str]:
    """Each parameter of a route with what it accepts: a converter's name or a group's regex."""
    found = {name: match for name, match in re.findall(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", route)}
    for name, converter in getattr(entry.pattern, "converters", {}).items():
        found[name] = "id" if isinstance(converter, RecordIdConverter) else type(converter).__name__
    found.update({name: "id" for name in re.findall(r"<id:(\w+)>", route)})
    return {name: accepts for name, accepts in found.items() if name not in NOT_IDS}


def test_every_id_in_every_route_only_matches_record_ids():
    # Django's admin answers a malformed object id itself (a redirect with "doesn't exist").
    routes = [
        (route, entry) for route, entry in flattened(get_resolver().url_patterns) if not route.startswith("admin/")
    ]
    with_ids = [(route, id_parameters(route, entry)) for route, entry in routes]
    with_ids = [(route, params) for route, params in with_ids if params]
    assert len(with_ids) > 40, "the walk should see the API's and the pages' detail routes"
    loose = [
        f"{route}: {name} accepts {accepts!r}"
        for route, params in with_ids
        for name, accepts in params.items()
        if accepts not in ("id", ID_PATTERN)
    ]
    assert not loose, "route parameters that let a malformed id through:\n" + "\n".join(loose)


MALFORMED = ["x", "false", "1.5", "-1", "99999999999999999999"]

API_ROUTES = [
    "/api/batches/{}/next/",
    "/api/batches/{}/agreement/",
    "/api/batches/{}/",
    "/api/quizzes/{}/start/",
    "/api/attempts/{}/submit-section/",
    "/api/attempts/1/answers/{}",
    "/api/reviews/{}/grade/",
    "/api/pair-policies/{}/fill/",
    "/api/training-runs/{}/",
    "/api/training-runs/best-of-k/{}/",
    "/api/dataset-exports/{}/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("route", API_ROUTES)
def test_a_malformed_id_in_the_api_is_a_404(route, researcher):
    annotator = AnnotatorFactory()
    BatchFactory()
    for user in (researcher, annotator):
        client = client_for(user)
        for value in MALFORMED:
            url = route.format(value)
            for method in (client.get, client.post):
                response = method(url, {}, format="json")
                assert response.status_code == 404, (user.username, url, response.status_code)


PAGE_ROUTES = [
    "/annotate/{}/",
    "/research/batches/{}/",
    "/research/reward-models/{}/",
    "/quality/batches/{}/",
    "/quizzes/attempts/{}/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("route", PAGE_ROUTES)
def test_a_malformed_id_in_a_page_is_a_404(route, researcher):
    client = page_client_for(researcher)
    for value in MALFORMED:
        assert client.get(route.format(value)).status_code == 404
