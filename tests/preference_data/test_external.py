"""Parsing open-source preference files: HH-RLHF and TRL styles, JSONL and Parquet, and their errors."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from preference_data.external import ExternalFileError, iter_external, parse_external, validate_external


def jsonl(*records) -> io.BytesIO:
    return io.BytesIO("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode())


def parquet(records: list[dict], schema: pa.Schema | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records, schema=schema), buffer)
    buffer.seek(0)
    return buffer


HH = {
    "chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for 9 minutes.",
    "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: Eggs are bad.",
}
HH_MULTI = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: A joke please\n\nAssistant: Why did...",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: A joke please\n\nAssistant: No.",
}
TRL_PLAIN = {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven.", "score_chosen": 9.0}
TRL_CONVERSATIONAL = {
    "prompt": [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And times 3?"},
    ],
    "chosen": [{"role": "assistant", "content": "12."}],
    "rejected": [{"role": "assistant", "content": "7."}],
    "strength": "significantly_better",
}
TRL_IMPLICIT = {
    "chosen": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}],
    "rejected": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon."}],
}


def test_hh_rlhf_jsonl_single_and_multi_turn():
    info, pairs = parse_external(jsonl(HH, HH_MULTI))
    assert (info.format, info.file_type, info.rows) == ("hh_rlhf", "jsonl", 2)
    first, second = pairs
    assert first.context == [{"role": "user", "content": "How do I boil an egg?"}]
    assert (first.chosen, first.rejected, first.line) == ("Put it in boiling water for 9 minutes.", "Eggs are bad.", 1)
    assert [t["role"] for t in second.context] == ["user", "assistant", "user"]
    assert second.context[1]["content"] == "Hello! How can I help?"
    assert (second.chosen, second.rejected, second.strength) == ("Why did...", "No.", "")


def test_trl_plain_conversational_and_implicit_prompt():
    info, pairs = parse_external(jsonl(TRL_PLAIN, TRL_CONVERSATIONAL, TRL_IMPLICIT))
    assert (info.format, info.rows) == ("trl", 3)
    plain, conversational, implicit = pairs
    assert plain.context == [{"role": "user", "content": "Name a colour."}] and plain.chosen == "Blue."
    assert conversational.context == TRL_CONVERSATIONAL["prompt"]
    assert (conversational.chosen, conversational.rejected, conversational.strength) == (
        "12.",
        "7.",
        "significantly_better",
    )
    assert implicit.context == [{"role": "user", "content": "Capital of France?"}]
    assert (implicit.chosen, implicit.rejected) == ("Paris.", "Lyon.")


def test_parquet_in_both_styles():
    info, pairs = parse_external(parquet([HH, HH_MULTI]))
    assert (info.format, info.file_type, info.rows) == ("hh_rlhf", "parquet", 2)
    assert pairs[1].chosen == "Why did..."
    conversational = {k: TRL_CONVERSATIONAL[k] for k in ("prompt", "chosen", "rejected")}
    info, pairs = parse_external(parquet([conversational, conversational]))
    assert (info.format, info.file_type, info.rows) == ("trl", "parquet", 2)
    assert pairs[0].context == TRL_CONVERSATIONAL["prompt"] and pairs[0].line == 1 and pairs[1].line == 2


def test_the_forbidden_safety_label_is_kept_for_the_builder_to_exclude():
    _, pairs = parse_external(jsonl({**TRL_PLAIN, "safety_label": "chosen_unsafe_other_safe"}))
    assert pairs[0].safety_label == "chosen_unsafe_other_safe"


def test_malformed_jsonl_lists_every_problem_with_its_line():
    source = jsonl(
        HH,
        "{not json",
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"},
        {"chosen": "\n\nHuman: a\n\nHuman: b\n\nAssistant: c", "rejected": "\n\nHuman: a\n\nHuman: b\n\nAssistant: d"},
        {"chosen": "\n\nHuman: a\n\nAssistant: same", "rejected": "\n\nHuman: a\n\nAssistant: same"},
        {"chosen": "Preamble\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"},
        {"chosen": "\n\nHuman: a\n\nAssistant: b"},
        "[1, 2]",
    )
    with pytest.raises(ExternalFileError) as caught:
        validate_external(source, "hh_rlhf")
    errors = caught.value.errors
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1].startswith("line 3: chosen and rejected differ before their last Assistant turn")
    assert errors[2] == "line 4, field chosen: turn 1 should be Assistant (turns alternate, starting with Human)"
    assert errors[3] == "line 4, field rejected: turn 1 should be Assistant (turns alternate, starting with Human)"
    assert errors[4].startswith("line 5: the chosen and rejected responses are identical")
    assert errors[5].startswith("line 6: chosen and rejected differ before their last Assistant turn (first at turn 0)")
    assert errors[6] == "line 7, field rejected: must be a string, got missing"
    assert errors[7] == "line 8: expected a JSON object, got list"
    assert len(errors) == 8
    assert "fix these 8 problem(s)" in str(caught.value)


def test_malformed_trl_rows_name_the_field():
    source = jsonl(
        TRL_PLAIN,
        {"prompt": "", "chosen": "a", "rejected": "b"},
        {"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"},
        {
            "prompt": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hi"}],
            "chosen": "a",
            "rejected": "b",
        },
        {"prompt": "hi", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
        {"prompt": "hi", "chosen": "a", "rejected": "b", "strength": "much_better"},
        {"prompt": "hi", "chosen": 3, "rejected": "b"},
    )
    with pytest.raises(ExternalFileError) as caught:
        validate_external(source, "trl")
    errors = caught.value.errors
    assert errors[0] == "line 2, field prompt: must not be empty"
    assert errors[1].startswith("line 3, field prompt[0]: role 'assistant' where 'user' was expected")
    assert errors[2] == "line 5, field chosen: must hold exactly one assistant message when a prompt is given"
    assert errors[3].startswith("line 6, field strength: 'much_better' is not one of")
    assert errors[4] == "line 7, field chosen: must be a string or a list of messages"
    assert len(errors) == 5  # line 4's system message is kept


def test_malformed_parquet_names_rows_and_missing_columns():
    rows = [TRL_PLAIN, {"prompt": "hi", "chosen": "same", "rejected": "same", "score_chosen": 1.0}]
    with pytest.raises(ExternalFileError) as caught:
        validate_external(parquet(rows), "trl")
    assert caught.value.errors == ["row 2: the chosen and rejected responses are identical (no preference to learn)"]
    with pytest.raises(ExternalFileError) as caught:
        validate_external(parquet([{"prompt": "hi", "chosen": "a"}]), "trl")
    assert caught.value.errors == ["row 1, field rejected: must be a string or a list of messages"]
    with pytest.raises(ExternalFileError) as caught:
        validate_external(io.BytesIO(b"PAR1 but not really parquet"))
    assert caught.value.errors[0].startswith("not a readable Parquet file")


def test_unknown_shapes_and_empty_files_are_refused():
    with pytest.raises(ExternalFileError, match="cannot tell the format"):
        validate_external(jsonl({"question": "q", "answer": "a"}))
    with pytest.raises(ExternalFileError, match="holds no preference pairs"):
        validate_external(jsonl())
    with pytest.raises(ExternalFileError, match="unknown format"):
        validate_external(jsonl(HH), "csv")


def test_iter_external_rereads_the_file_from_the_start():
    source = jsonl(HH, HH_MULTI)
    info = validate_external(source)
    assert source.tell() == 0
    assert [p.line for p in iter_external(source, info.format)] == [1, 2]
    assert [p.line for p in iter_external(source, info.format)] == [1, 2]


ULTRAFEEDBACK = {
    "prompt": "Write a haiku about rain.",
    "prompt_id": "abc",
    "chosen": [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof / ..."},
    ],
    "rejected": [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Rain is water."},
    ],
    "messages": [],
    "score_chosen": 8.5,
    "score_rejected": 4.0,
}


@pytest.mark.parametrize(
    ("scores", "strength"),
    [
        ((9, 6), "significantly_better"),
        ((8.5, 6), "better"),
        ((7, 6), "slightly_better"),
        ((6.5, 6), "negligibly_better"),
        ((6, 6), "negligibly_better"),
    ],
)
def test_ultrafeedback_rows_drop_the_repeated_prompt_and_map_the_score_gap_to_a_strength(scores, strength):
    row = {**ULTRAFEEDBACK, "score_chosen": scores[0], "score_rejected": scores[1]}
    info, (pair,) = parse_external(jsonl(row))
    assert info.format == "ultrafeedback"
    assert pair.context == [{"role": "user", "content": "Write a haiku about rain."}]
    assert (pair.chosen, pair.rejected, pair.strength) == ("Soft rain on the roof / ...", "Rain is water.", strength)


def test_an_explicit_strength_wins_over_the_scores_and_bad_scores_are_refused():
    _, (pair,) = parse_external(jsonl({**ULTRAFEEDBACK, "strength": "slightly_better"}))
    assert pair.strength == "slightly_better"
    reversed_scores = {**ULTRAFEEDBACK, "score_chosen": 2.0}
    not_repeated = {
        **ULTRAFEEDBACK,
        "chosen": [{"role": "user", "content": "Another prompt"}, ULTRAFEEDBACK["chosen"][1]],
    }
    with pytest.raises(ExternalFileError) as caught:
        validate_external(jsonl(ULTRAFEEDBACK, reversed_scores, not_repeated))
    assert caught.value.errors == [
        "line 2 (read as UltraFeedback), field score_chosen: 2 is below score_rejected 4; the chosen response must "
        "score at least as high",
        "line 3 (read as UltraFeedback), field chosen: must repeat the prompt's turns and end with one assistant "
        "reply (1 prompt turn(s) expected before it)",
    ]


def test_ultrafeedback_from_parquet_keeps_its_scores():
    info, (pair,) = parse_external(parquet([ULTRAFEEDBACK]))
    assert (info.format, pair.strength) == ("ultrafeedback", "significantly_better")


def test_implicit_prompt_plain_strings_split_at_the_shared_prefix():
    info, (pair, other) = parse_external(
        jsonl(
            {"chosen": "The sky is blue.", "rejected": "The sky is green."},
            {"chosen": "Tell me a colour: black", "rejected": "Tell me a colour: blue"},
        )
    )
    assert info.format == "trl"
    assert (pair.context, pair.chosen, pair.rejected) == (
        [{"role": "user", "content": "The sky is"}],
        "blue.",
        "green.",
    )
    assert (other.context[0]["content"], other.chosen, other.rejected) == ("Tell me a colour:", "black", "blue")
    with pytest.raises(ExternalFileError, match="share no prompt"):
        validate_external(jsonl({"chosen": "Yes.", "rejected": "No."}))


def test_system_messages_are_kept_in_every_style():
    system = {"role": "system", "content": "You are a terse assistant."}
    trl = {"prompt": [system, {"role": "user", "content": "Hi"}], "chosen": "Hi.", "rejected": "Hello there, friend!"}
    implicit = {
        "chosen": [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hi."}],
        "rejected": [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    }
    _, pairs = parse_external(jsonl(trl, implicit))
    assert [p.context[0] for p in pairs] == [system, system]
    hh = {
        "chosen": "You are a terse assistant.\n\nHuman: Hi\n\nAssistant: Hi.",
        "rejected": "You are a terse assistant.\n\nHuman: Hi\n\nAssistant: Hello!",
    }
    _, (pair,) = parse_external(jsonl(hh))
    assert pair.context == [system, {"role": "user", "content": "Hi"}]
    late = {
        "prompt": [{"role": "user", "content": "Hi"}, system, {"role": "user", "content": "x"}],
        "chosen": "a",
        "rejected": "b",
    }
    with pytest.raises(ExternalFileError, match="a system message may only come first"):
        validate_external(jsonl(late))


def test_a_file_mixing_formats_says_which_format_each_line_was_read_as():
    with pytest.raises(ExternalFileError) as caught:
        validate_external(jsonl(TRL_PLAIN, HH, ULTRAFEEDBACK, {"prompt": "", "chosen": "a", "rejected": "b"}))
    assert caught.value.errors == [
        "line 2: reads as HH-RLHF, but the file is TRL (detected from line 1); put each format in a file of its own",
        "line 3: reads as UltraFeedback, but the file is TRL (detected from line 1); put each format in a file of "
        "its own",
        "line 4 (read as TRL), field prompt: must not be empty",
    ]
