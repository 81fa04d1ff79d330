import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotation.models import Comparison, Rating
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    UserFactory,
    VendorFactory,
    VendorManagerFactory,
)
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def test_annotator_flow_never_reveals_model_names():
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch, prompt="Explain recursion.")
    annotator = AnnotatorFactory()
    api = client_for(annotator)
    leased = api.post(f"/api/batches/{batch.id}/next/")
    assert leased.status_code == 200
    body = leased.content.decode()
    assert comparison.response_a.variant.name not in body and "secret-model" not in body
    payload = leased.json()
    assert payload["context"] == [{"role": "user", "content": "Explain recursion."}]
    assert {payload["left"]["id"], payload["right"]["id"]} == {comparison.response_a_id, comparison.response_b_id}
    submit = {
        "assignment": payload["assignment"],
        "chosen_response": payload["right"]["id"],
        "strength": "slightly_better",
        "idempotency_key": "abc",
        "seconds_spent": 12.5,
    }
    first = api.post("/api/ratings/", submit, format="json")
    again = api.post("/api/ratings/", submit, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Rating.objects.count() == 1
    assert "secret-model" not in api.get("/api/ratings/").content.decode()
    assert api.get("/api/comparisons/").status_code == 403


def test_refusals_are_4xx_with_a_message():
    batch = BatchFactory(focus="safety")
    ComparisonFactory(batch=batch)
    annotator = AnnotatorFactory()
    api = client_for(annotator)
    payload = api.post(f"/api/batches/{batch.id}/next/").json()
    base = {"assignment": payload["assignment"], "chosen_response": payload["left"]["id"], "idempotency_key": "k1"}
    missing_strength = api.post("/api/ratings/", base, format="json")
    assert missing_strength.status_code == 400 and missing_strength.json()["field"] == "strength"
    missing_safety = api.post("/api/ratings/", {**base, "strength": "better"}, format="json")
    assert missing_safety.status_code == 400 and "safety batch" in missing_safety.json()["detail"]
    no_key = api.post("/api/ratings/", {k: v for k, v in base.items() if k != "idempotency_key"}, format="json")
    assert no_key.status_code == 400 and "idempotency_key" in no_key.json()
    garbage = api.post("/api/ratings/", "not json", content_type="application/json")
    assert garbage.status_code == 400
    other = client_for(AnnotatorFactory())
    stolen = other.post("/api/ratings/", {**base, "strength": "better", "safety_label": "both_safe"}, format="json")
    assert stolen.status_code == 403 and "another annotator" in stolen.json()["detail"]
    assert Rating.objects.count() == 0


def test_empty_batch_answers_204():
    batch = BatchFactory()
    assert client_for(AnnotatorFactory()).post(f"/api/batches/{batch.id}/next/").status_code == 204


def test_vendor_managers_see_only_their_own_people_and_ratings():
    acme, other = VendorFactory(), VendorFactory()
    mine, theirs = AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)
    batch = BatchFactory(overlap=2)
    ComparisonFactory(batch=batch)
    for annotator in (mine, theirs):
        api = client_for(annotator)
        payload = api.post(f"/api/batches/{batch.id}/next/").json()
        api.post(
            "/api/ratings/",
            {
                "assignment": payload["assignment"],
                "chosen_response": payload["left"]["id"],
                "strength": "better",
                "idempotency_key": "k",
            },
            format="json",
        )
    manager = client_for(VendorManagerFactory(vendor=acme))
    people = [p["username"] for p in manager.get("/api/people/").json()["results"]]
    assert mine.username in people and theirs.username not in people
    ratings = manager.get("/api/ratings/").json()["results"]
    assert [r["annotator"] for r in ratings] == [mine.pseudonym]
    assert [v["name"] for v in manager.get("/api/vendors/").json()["results"]] == [acme.name]
    assert client_for(mine).get("/api/people/").status_code == 403


def test_researcher_sees_variants_labels_and_progress():
    researcher = UserFactory()
    batch = BatchFactory(overlap=1)
    comparison = ComparisonFactory(batch=batch)
    annotator = AnnotatorFactory()
    api = client_for(annotator)
    payload = api.post(f"/api/batches/{batch.id}/next/").json()
    api.post(
        "/api/ratings/",
        {
            "assignment": payload["assignment"],
            "chosen_response": comparison.response_b_id,
            "strength": "better",
            "idempotency_key": "k",
        },
        format="json",
    )
    research = client_for(researcher)
    rows = research.get(f"/api/comparisons/?batch={batch.id}").json()["results"]
    assert rows[0]["label_choice"] == "b" and rows[0]["response_a"]["variant"].startswith("secret-model")
    progress = research.get(f"/api/batches/{batch.id}/progress/").json()
    assert (
        progress["ratings_done"] == 1 and progress["ratings_needed"] == 1 and progress["by_strength"] == {"better": 1}
    )


def test_researcher_creates_batches_and_imports_with_line_errors():
    research = client_for(UserFactory())
    created = research.post("/api/batches/", {"name": "W2 help", "focus": "helpfulness"}, format="json")
    assert created.status_code == 201
    batch_id = created.json()["id"]
    duplicate = research.post("/api/batches/", {"name": "W2 help", "focus": "helpfulness"}, format="json")
    assert duplicate.status_code == 409
    line = {
        "prompt": "p",
        "responses": [
            {"text": "x", "variant": "v1", "temperature": 0.6},
            {"text": "y", "variant": "v2", "temperature": 0.9},
        ],
    }
    bad = SimpleUploadedFile("c.jsonl", (json.dumps(line) + "\n" + '{"prompt": 3}\n').encode())
    refused = research.post(f"/api/batches/{batch_id}/import-comparisons/", {"file": bad}, format="multipart")
    assert refused.status_code == 400
    assert "line 2, field prompt: must be a non-empty string" in refused.json()["errors"]
    assert Comparison.objects.count() == 0
    good = SimpleUploadedFile("c.jsonl", (json.dumps(line) + "\n").encode())
    imported = research.post(f"/api/batches/{batch_id}/import-comparisons/", {"file": good}, format="multipart")
    assert imported.status_code == 201 and imported.json() == {"imported": 1}
    annotator_api = client_for(AnnotatorFactory())
    assert annotator_api.post("/api/batches/", {"name": "x", "focus": "safety"}, format="json").status_code == 403


def test_token_auth_and_schema():
    user = UserFactory(username="tok")
    api = APIClient()
    token = api.post("/api/auth/token/", {"username": "tok", "password": "pw-for-tests"}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/me/").json()["username"] == user.username
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/batches/{id}/next/" in schema.content
    assert APIClient().get("/api/batches/").status_code == 401
