"""The one text rule (core/text.py) at every door: the API's bodies and query strings, the pages'
forms, JSONL imports (API and management commands) and the rating's bounded numbers (issue 12)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from annotation.models import Comparison, Prompt, Rating
from core.text import problems_in, text_problem
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory
from tests.helpers import client_for, page_client_for


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_are_refused_with_their_code_and_position(char):
    problem = text_problem(f"ab{char}c")
    assert problem.startswith(f"contains the control character U+{ord(char):04X}")
    assert "at character 3" in problem


def test_tabs_line_breaks_and_ordinary_unicode_pass():
    assert text_problem("line one\n\tline two\r\n¿Qué tal? 你好 🙂 — ‘quotes’") is None


def test_markup_is_refused_only_where_it_reaches_a_chat_template():
    assert text_problem("[INST] hi [/INST]") is None
    assert "[INST], [/INST]" in text_problem("[INST] hi [/INST]", allow_markup=False)


def test_problems_name_the_path_inside_a_json_document():
    document = {"dialogue": [{"content": "ok"}, {"content": "bad\x00"}], "na\x01me": "x"}
    assert dict(problems_in(document)).keys() == {"dialogue[1].content", "na\x01me"}


pytestmark = pytest.mark.django_db


def upload(*lines) -> SimpleUploadedFile:
    return SimpleUploadedFile("f.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode())


def test_a_nul_in_an_imported_prompt_is_a_400_naming_line_and_field_and_writes_nothing(researcher):
    batch = BatchFactory()
    api = client_for(researcher)
    refused = api.post(
        f"/api/batches/{batch.id}/import-prompts/",
        {"file": upload({"text": "fine"}, {"text": "bro\x00ken"})},
        format="multipart",
    )
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        "line 2, field text: contains the control character U+0000 (NUL) at character 4; remove it (only tabs and "
        "line breaks are allowed)"
    ]
    assert Prompt.objects.count() == 0


def test_chat_markup_in_an_import_is_refused_unless_the_researcher_allows_it(researcher):
    batch = BatchFactory()
    api = client_for(researcher)
    line = {
        "prompt": "What does <<SYS>> mean in a Llama 2 prompt?",
        "responses": [
            {"text": "It opens the system prompt.", "variant": "m1", "temperature": 0.7},
            {"text": "A tag.", "variant": "m2", "temperature": 1.0},
        ],
    }
    url = f"/api/batches/{batch.id}/import-comparisons/"
    refused = api.post(url, {"file": upload(line)}, format="multipart")
    assert refused.status_code == 400
    assert "line 1, field prompt: contains <<SYS>>" in refused.json()["errors"][0]
    assert "allow chat markup for this import" in refused.json()["errors"][0]
    assert Comparison.objects.count() == 0
    allowed = api.post(url, {"file": upload(line), "allow_markup": "true"}, format="multipart")
    assert allowed.status_code == 201 and allowed.json() == {"imported": 1}


def test_the_import_commands_refuse_bad_text_without_a_traceback(tmp_path):
    batch = BatchFactory()
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": "x\x00y"}) + "\n")
    with pytest.raises(CommandError, match="line 1, field text: contains the control character U\\+0000"):
        call_command("import_prompts", str(batch.id), str(path))
    with pytest.raises(CommandError, match="The batch argument contains the control character"):
        call_command("import_prompts", "ba\x00tch", str(path))
    path.write_text(json.dumps({"text": "[INST] hi"}) + "\n")
    with pytest.raises(CommandError, match=r"contains \[INST\]"):
        call_command("import_prompts", str(batch.id), str(path))
    call_command("import_prompts", str(batch.id), str(path), "--allow-markup")
    assert Prompt.objects.get().text == "[INST] hi"


def leased(annotator):
    comparison = ComparisonFactory(batch=BatchFactory())
    api = client_for(annotator)
    payload = api.post(f"/api/batches/{comparison.batch_id}/next/").json()
    return api, payload


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rationale": "because\x1b[31m"}, "rationale"),
        ({"rationale": "nul\x00"}, "rationale"),
        ({"seconds_spent": 1e308}, "seconds_spent"),
        ({"seconds_spent": 86_401}, "seconds_spent"),
        ({"seconds_spent": -1}, "seconds_spent"),
    ],
)
def test_a_rating_with_bad_text_or_an_unbounded_number_is_refused_and_nothing_is_stored(change, field):
    api, payload = leased(AnnotatorFactory())
    submit = {
        "assignment": payload["assignment"],
        "chosen_response": payload["left"]["id"],
        "strength": "better",
        "idempotency_key": "k1",
        **change,
    }
    refused = api.post("/api/ratings/", submit, format="json")
    assert refused.status_code == 400, refused.content
    body = refused.json()
    assert field in body or body.get("field") == field, body
    assert Rating.objects.count() == 0
    submit.update(rationale="fine", seconds_spent=86_400)
    assert api.post("/api/ratings/", submit, format="json").status_code == 201


def test_a_control_character_in_a_query_string_is_a_400_not_a_database_error(researcher):
    response = client_for(researcher).get("/api/batches/", {"focus": "safety\x00"})
    assert response.status_code == 400
    assert response.json()["field"] == "focus"


def test_a_control_character_in_a_page_form_is_a_400_naming_the_field(researcher):
    batch = BatchFactory()
    client = page_client_for(researcher)
    response = client.post(f"/research/batches/{batch.id}/sampling/fill/", {"count": "2\x00"})
    assert response.status_code == 400
    assert "count contains the control character U+0000 (NUL)" in response.content.decode()
