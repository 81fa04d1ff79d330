"""The schema's shared parts (config/schema.py, config/pagination.py, config/filters.py and the
error bodies of config/exceptions.py), each against the answer the API really gives.
tests/test_api_fuzz.py checks every operation the same way with a fuzzer."""

import re

import pytest
from rest_framework.test import APIClient

from config.pagination import MAX_PAGE_SIZE
from config.schema import TEXT_PATTERN
from core.text import control_character_problem
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def document():
    return APIClient().get("/api/schema/?format=json").json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield f"{method.upper()} {path}", operation


def test_the_text_pattern_says_what_the_text_rule_refuses():
    pattern = re.compile(TEXT_PATTERN)
    for code in range(0x250):
        text = f"a{chr(code)}b"
        assert (pattern.fullmatch(text) is None) == (control_character_problem(text) is not None), hex(code)


def test_every_operation_documents_its_errors_with_the_shared_error_bodies(document):
    checked = 0
    for label, operation in operations(document):
        responses = operation["responses"]
        security = operation.get("security", [])
        if security and {} not in security:  # signed-in users only
            assert {"401", "403"} <= set(responses), label
            assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            checked += 1
        if "requestBody" in operation:
            assert {"400", "404"} <= set(responses), label
            schema = responses["400"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationError"}, label
        if "{" in label:
            assert "404" in responses, label
    assert checked > 50
    assert set(document["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}


def test_a_throttled_operation_documents_429(document):
    assert "429" in document["paths"]["/api/auth/token/"]["post"]["responses"]


def test_state_errors_are_documented_where_the_action_declares_them(document):
    rating = document["paths"]["/api/ratings/"]["post"]["responses"]
    assert {"409", "410"} <= set(rating)
    assert rating["410"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "409" not in document["paths"]["/api/ratings/"]["get"]["responses"]


def test_error_bodies_have_the_documented_shape():
    anonymous = APIClient()
    refused = anonymous.get("/api/batches/")
    assert refused.status_code in (401, 403) and set(refused.json()) == {"detail", "code"}
    annotator = client_for(AnnotatorFactory())
    forbidden = annotator.post("/api/batches/", {"name": "x", "focus": "safety"}, format="json")
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "permission_denied"
    missing = APIClient().get("/api/no-such-thing/")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"
    assert missing.json() == {"detail": "Not found.", "code": "not_found"}


def test_page_size_has_a_documented_maximum_and_a_size_beyond_it_is_refused(document, researcher):
    parameters = {p["name"]: p for p in document["paths"]["/api/batches/"]["get"]["parameters"]}
    assert parameters["page_size"]["schema"]["maximum"] == MAX_PAGE_SIZE
    client = client_for(researcher)
    BatchFactory.create_batch(3)
    page = client.get("/api/batches/?page_size=2").json()
    assert len(page["results"]) == 2 and page["count"] == 3
    assert len(client.get("/api/batches/").json()["results"]) == 3
    for size in (0, MAX_PAGE_SIZE + 1, "ten"):
        refused = client.get(f"/api/batches/?page_size={size}")
        assert refused.status_code == 400 and "page_size" in refused.json(), size
    for page in ("", "two", "-1"):
        refused = client.get(f"/api/batches/?page={page}")
        assert refused.status_code == 400 and "page" in refused.json(), page
    assert client.get("/api/batches/?page=1").status_code == 200
    assert client.get("/api/batches/?page=9").status_code == 404  # past the last page, as DRF answers


def test_a_filter_on_a_record_that_does_not_exist_answers_an_empty_page(document, researcher):
    parameters = {p["name"]: p for p in document["paths"]["/api/comparisons/"]["get"]["parameters"]}
    assert parameters["batch"]["schema"]["type"] == "integer"
    batch = ComparisonFactory().batch
    client = client_for(researcher)
    assert client.get(f"/api/comparisons/?batch={batch.pk}").json()["count"] == 1
    assert client.get(f"/api/comparisons/?batch={batch.pk + 1000}").json()["count"] == 0
    assert client.get("/api/comparisons/?batch=one").status_code == 400
    assert client.get("/api/comparisons/?is_gold=false").json()["count"] == 1
    assert client.get("/api/comparisons/?is_gold=null").status_code == 400  # not "no filter"


def test_a_reference_to_a_record_that_does_not_exist_is_a_404_naming_the_field(researcher):
    answer = client_for(researcher).post("/api/batch-requirements/", {"batch": 10**9, "quiz": 10**9}, format="json")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found" and answer.json()["field"] in ("batch", "quiz")


def test_an_empty_typed_filter_is_refused_while_an_empty_choice_means_any(document, researcher):
    parameters = {p["name"]: p for p in document["paths"]["/api/batches/"]["get"]["parameters"]}
    assert parameters["week"]["schema"]["format"] == "date"  # typed from the model, not a bare string
    BatchFactory()
    client = client_for(researcher)
    for empty in ("week", "is_open"):
        refused = client.get(f"/api/batches/?{empty}=")
        assert refused.status_code == 400 and empty in refused.json(), empty
    assert client.get("/api/batches/?focus=").json()["count"] == 1
    assert client.get("/api/batches/").json()["count"] == 1


def test_every_choice_set_has_one_name_in_the_schema(document):
    names = [name for name in document["components"]["schemas"] if name.endswith("Enum")]
    # drf-spectacular names a colliding set with three characters of a hash: StatusD4fEnum, Role9b7Enum.
    assert not [name for name in names if re.search(r"[0-9A-F][0-9a-f]{2}Enum$", name)], names
