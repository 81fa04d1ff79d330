"""The rows a dataset build holds, read in id order with raw SQL on a connection of its own (a
server-side cursor on PostgreSQL), a chunk at a time: the pairs with their texts and earlier turns
(what the exports write and the trainer takes) and the ratings behind them. Exports
(preference_data.services.exports) and training (rewardmodel.selectors.preference_pairs) share them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

from accounts.models import User
from agreement.models import AgreementReport, ComparisonLabel, ReportScope
from annotation.models import Comparison, Rating, Response, Turn

from .. import rules
from ..models import DatasetBuild, DatasetPair, ExternalComparison
from .builds import label_rules
from .streaming import id_list_condition, server_side_cursor


def _table(model) -> str:
    return model._meta.db_table


class ExportSql:
    """The export queries, with each backend's quoting (Turn has a column named "index").

    The user turn a comparison answers (index context_length - 1) comes with the pair in one query;
    only comparisons deeper in a dialogue (context_length > 1) need their earlier turns, fetched
    per chunk with one more query.
    """

    def __init__(self, reader):
        q = reader.ops.quote_name
        pair, comparison, response = q(_table(DatasetPair)), q(_table(Comparison)), q(_table(Response))
        turn = q(_table(Turn))
        self.q = q
        self.earlier_turns = (
            f"SELECT {q('dialogue_id')}, {q('index')}, {q('role')}, {q('content')} FROM {turn} "
            f"WHERE {{condition}} AND {q('index')} < %s ORDER BY {q('dialogue_id')}, {q('index')}"
        )
        self.preflab_pairs = (
            f"SELECT p.split, p.strength, p.margin, p.safety_label, c.id, c.batch_id, c.dialogue_id, "
            f"c.context_length, p.chosen_response_id, p.rejected_response_id, t.role, t.content, rc.text, rr.text "
            f"FROM {pair} p JOIN {comparison} c ON c.id = p.comparison_id "
            f"LEFT JOIN {turn} t ON t.dialogue_id = c.dialogue_id AND t.{q('index')} = c.context_length - 1 "
            f"JOIN {response} rc ON rc.id = p.chosen_response_id JOIN {response} rr ON rr.id = p.rejected_response_id "
            f"WHERE p.build_id = %s AND p.split = %s AND p.comparison_id IS NOT NULL ORDER BY p.id"
        )
        self.external_pairs = (
            f"SELECT p.id, p.split, p.strength, p.margin, p.safety_label, p.component, e.id, e.context, "
            f"e.chosen, e.rejected, e.source_id "
            f"FROM {pair} p JOIN {q(_table(ExternalComparison))} e ON e.id = p.external_id "
            f"WHERE p.build_id = %s AND p.split = %s AND p.external_id IS NOT NULL ORDER BY p.id"
        )
        # The comparison's Dawid-Skene label from its batch's agreement report (one per batch).
        report, label = q(_table(AgreementReport)), q(_table(ComparisonLabel))
        self.ratings = (
            f"SELECT r.id, r.comparison_id, p.split, c.batch_id, r.annotator_id, u.vendor_id, r.chosen, "
            f"c.response_a_id, c.response_b_id, r.strength, r.safety_label, r.shown_left, r.seconds_spent, "
            f"r.created_at, (c.is_gold AND r.created_at >= c.gold_marked_at), l.ds_label, l.ds_posterior "
            f"FROM {pair} p JOIN {comparison} c ON c.id = p.comparison_id "
            f"JOIN {q(_table(Rating))} r ON r.comparison_id = c.id JOIN {q(_table(User))} u ON u.id = r.annotator_id "
            f"LEFT JOIN {report} ar ON ar.batch_id = c.batch_id AND ar.scope = '{ReportScope.BATCH.value}' "
            f"LEFT JOIN {label} l ON l.report_id = ar.id AND l.comparison_id = c.id "
            f"WHERE p.build_id = %s AND p.comparison_id IS NOT NULL ORDER BY p.id, r.id"
        )


def _earlier_turns(reader, sql: ExportSql, side_cursor, deep: list[tuple[int, int]]) -> dict:
    """{dialogue id: [(index, message)]} of the turns before the compared ones, for (dialogue, length) pairs."""
    if not deep:
        return {}
    condition, params = id_list_condition(reader, sql.q("dialogue_id"), sorted({d for d, _ in deep}))
    side_cursor.execute(sql.earlier_turns.format(condition=condition), [*params, max(n for _, n in deep)])
    turns: dict[int, list] = defaultdict(list)
    for dialogue_id, index, role, content in side_cursor.fetchall():
        turns[dialogue_id].append((index, {"role": role, "content": content}))
    return turns


def preflab_rows(
    reader, sql: ExportSql, build: DatasetBuild, split: str, fetch: int
) -> Iterator[list[rules.ExportRow]]:
    batches = {b["id"]: b for b in build.selection.get("batches") or []}
    cursor, side = server_side_cursor(reader), reader.cursor()
    try:
        cursor.execute(sql.preflab_pairs, [build.pk, split])
        while rows := cursor.fetchmany(fetch):
            deep = [(row[6], row[7]) for row in rows if row[7] != 1 or row[10] is None]
            turns = _earlier_turns(reader, sql, side, deep)
            chunk = []
            for (
                split,
                strength,
                margin,
                safety,
                comparison_id,
                batch_id,
                dialogue_id,
                context_length,
                chosen_id,
                rejected_id,
                role,
                content,
                chosen,
                rejected,
            ) in rows:
                if context_length == 1 and role is not None:
                    context = [{"role": role, "content": content}]
                else:
                    context = [message for index, message in turns[dialogue_id] if index < context_length]
                batch = batches.get(batch_id) or {"name": str(batch_id), "focus": ""}
                chunk.append(
                    rules.ExportRow(
                        f"comparison:{comparison_id}",
                        split,
                        context,
                        chosen,
                        rejected,
                        margin,
                        strength,
                        safety,
                        batch["focus"],
                        "preflab",
                        batch["name"],
                        comparison_id,
                        chosen_id,
                        rejected_id,
                    )
                )
            yield chunk
    finally:
        cursor.close()
        side.close()


def external_rows(
    reader, sql: ExportSql, build: DatasetBuild, split: str, fetch: int, names: dict[int, str]
) -> Iterator[list[rules.ExportRow]]:
    cursor = server_side_cursor(reader)
    try:
        cursor.execute(sql.external_pairs, [build.pk, split])
        while rows := cursor.fetchmany(fetch):
            chunk = []
            for _id, split, strength, margin, safety, component, external_id, context, chosen, rejected, source in rows:
                messages = json.loads(context) if isinstance(context, str) else context
                chunk.append(
                    rules.ExportRow(
                        id=f"external:{external_id}",
                        split=split,
                        context=[{"role": m["role"], "content": m["content"]} for m in messages],
                        chosen=chosen,
                        rejected=rejected,
                        margin=margin,
                        strength=strength,
                        safety_label=safety,
                        focus=component.removeprefix("external_"),
                        source=f"external:{names.get(source, source)}",
                    )
                )
            yield chunk
    finally:
        cursor.close()


def _iso_utc(value) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def rating_rows(
    reader, sql: ExportSql, build: DatasetBuild, fetch: int, vendors: dict[int, str]
) -> Iterator[list[dict]]:
    batches = {b["id"]: b for b in build.selection.get("batches") or []}
    label_settings = label_rules(build.selection)
    pseudonyms: dict[int, str] = {}
    cursor = server_side_cursor(reader)
    try:
        cursor.execute(sql.ratings, [build.pk])
        while rows := cursor.fetchmany(fetch):
            chunk = []
            for (
                rating_id,
                comparison_id,
                split,
                batch_id,
                annotator_id,
                vendor_id,
                chosen,
                response_a,
                response_b,
                strength,
                safety,
                shown_left,
                seconds,
                created_at,
                gold_test,
                ds_label,
                ds_posterior,
            ) in rows:
                if annotator_id not in pseudonyms:
                    pseudonyms[annotator_id] = User(pk=annotator_id).pseudonym
                batch = batches.get(batch_id) or {"name": str(batch_id), "focus": ""}
                vote = rules.RatingVote(annotator_id, chosen, strength, safety, vendor_id)
                chunk.append(
                    {
                        "rating_id": rating_id,
                        "comparison_id": comparison_id,
                        "split": split,
                        "batch": batch["name"],
                        "focus": batch["focus"],
                        "annotator": pseudonyms[annotator_id],
                        "vendor": vendors.get(vendor_id, ""),
                        "chosen": chosen,
                        "chosen_response_id": response_a if chosen == "a" else response_b,
                        "rejected_response_id": response_b if chosen == "a" else response_a,
                        "strength": strength,
                        "safety_label": safety,
                        "shown_left": shown_left,
                        "seconds_spent": seconds,
                        "created_at": _iso_utc(created_at),
                        "used_in_label": label_settings.counts(vote) and not gold_test,
                        "ds_label": ds_label or "",
                        "ds_posterior": ds_posterior,
                    }
                )
            yield chunk
    finally:
        cursor.close()
