import json

import pytest

from annotation.importing import ImportFileError, parse_comparisons, parse_prompts


def line(obj) -> str:
    return json.dumps(obj) + "\n"


GOOD = {
    "prompt": "Say hi",
    "responses": [
        {"text": "Hi!", "variant": "m1", "temperature": 0.7},
        {"text": "Hello there.", "variant": "m2", "temperature": 1.0},
    ],
}


def test_parses_prompt_and_dialogue_lines():
    dialogue = {
        "dialogue": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "How are you?"},
        ],
        "responses": GOOD["responses"],
    }
    parsed = parse_comparisons([line(GOOD), "\n", line(dialogue)])
    assert [len(c.dialogue) for c in parsed] == [1, 3]
    assert parsed[1].line == 3
    assert parsed[0].responses[1].temperature == 1.0


def test_every_error_names_line_and_field():
    bad_temp = json.loads(json.dumps(GOOD))
    bad_temp["responses"][1]["temperature"] = "hot"
    one_response = {"prompt": "x", "responses": GOOD["responses"][:1]}
    with pytest.raises(ImportFileError) as err:
        parse_comparisons([line(GOOD), line(bad_temp), "{not json\n", line(one_response), line({"responses": []})])
    errors = err.value.errors
    assert "line 2, field responses[1], field temperature: must be a number from 0.0 to 2.0" in errors
    assert any(e.startswith("line 3: not valid JSON") for e in errors)
    assert "line 4, field responses: must be a list of exactly two responses" in errors
    assert any(e.startswith("line 5, field prompt: missing") for e in errors)


def test_dialogue_must_alternate_and_end_with_user():
    bad = {
        "dialogue": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        "responses": GOOD["responses"],
    }
    with pytest.raises(ImportFileError, match="must end with a user turn"):
        parse_comparisons([line(bad)])


def test_identical_responses_are_refused():
    same = {"prompt": "p", "responses": [GOOD["responses"][0], dict(GOOD["responses"][0], variant="m2")]}
    with pytest.raises(ImportFileError, match="identical"):
        parse_comparisons([line(same)])


def test_prompts_need_text():
    with pytest.raises(ImportFileError, match="line 2, field text"):
        parse_prompts([line({"text": "ok"}), line({"text": "  "})])
    with pytest.raises(ImportFileError, match="no prompts"):
        parse_prompts(["\n"])
