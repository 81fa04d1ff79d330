"""The rules that turn majority labels into reward-model pairs (pure; no Django).

Everything the dataset builder decides lives here, so it can be read and tested alone:

* **Margins** (Llama 2, Table 27): `MARGIN_TABLES` and `margin_for`. A pair whose strength is
  unknown (imported open-source data without one) gets margin 0 under every table: the plain
  ranking loss is the honest choice when nobody said how much better the response is.
* **Which comparisons become pairs** (`decide`; gold comparisons: `decide_gold`): the majority
  vote of `annotation.voting` over the ratings that pass the selection's rater filters (flagged
  annotators and vendors), then the exclusions, each counted under one `Exclusion` reason, checked
  in this order: a repeat of another comparison, not yet complete, no eligible rating left, tied,
  below the minimum posterior (Dawid-Skene labels), not unanimous (when unanimous only), below the
  minimum agreement, chosen response unsafe while the other is safe. Agreement is the share of the
  eligible raters who chose the labelled response.
* **Dawid-Skene labels** (`LABEL_SOURCES`, `dawid_skene_labels`): instead of the majority, the label
  can be Dawid & Skene's estimate, fitted per batch on the eligible ratings, which weighs each
  annotator by an estimated confusion matrix; a pair whose label has a posterior below the
  selection's minimum is left out. Its strength is the median of the raters who chose the label
  (unknown, so margin 0, when nobody did); a tied vote is not excluded, since Dawid-Skene decides it.
* **The safety rule**: a pair whose chosen response is unsafe while the other is safe
  (`FORBIDDEN_SAFETY_LABEL`) never reaches training ("safer responses are preferred"). Preflab's
  rating form cannot store it, but imported data or later edits can carry it, so it is represented
  and excluded with a count rather than assumed away.
* **Held-out test sets** (`unit_hash`, `count_threshold`, `split_for`): see "Splits" below.
* **Data mixes** (`mix_plan`, `uniform_sample`): Llama 2's helpfulness and safety mixes.
* **Rows** in the formats trainers read: TRL's conversational preference format (`trl_row`,
  `trl_json_line`, `trl_arrow`) and Anthropic HH-RLHF transcripts (`hh_row`, `hh_json_line`,
  `hh_arrow`), plus raw ratings (`RATINGS_COLUMNS`, `ratings_arrow`).

Splits
------
Each comparison gets a number ``u = unit_hash(seed, "dialogue:<dialogue id>")``, uniform in [0, 1)
and fixed for ever by the seed. It is a test pair when ``u < threshold`` of its batch. Keying on the
dialogue rather than the comparison keeps every comparison of a multi-turn dialogue on the same
side, so no prompt is trained on while its later turns are tested.

* Fraction mode: ``threshold = fraction``. Nothing depends on the batch's size, so a comparison
  never changes side when the batch grows.
* Count mode (Llama 2: 1,000 per batch): the threshold is the hash of the (count + 1)-th smallest
  comparison of the batch, capped at ``max_fraction`` so a small batch is not all test. The service
  computes it once per (batch, seed, count, cap), the first time the batch is built with comparisons
  in it (all of them, labelled or not: in pool mode they exist from the start), and stores it:
  later builds reuse it, so when the batch grows its test set grows in proportion and no comparison
  ever changes side. (Recomputing the k-th smallest on a grown batch would lower the threshold and
  move test pairs into training: the leak this rule exists to prevent.)

Imported open-source pairs are training data only: they have no held-out set of their own.

Mixes
-----
* ``helpfulness``: all Preflab helpfulness training pairs, plus ``ratio`` times as many (default 1,
  "an equal amount") sampled uniformly from the pooled Preflab safety and imported pairs.
* ``safety``: all Preflab safety and imported harmless-style (safety-focus) training pairs, plus
  helpfulness pairs (Preflab and imported helpful-style) sampled uniformly so that they make up
  ``1 - safety_share`` of the result (default 90/10).
* ``none``: the selection as it is.

Sampling takes the pairs with the smallest ``unit_hash(seed, "mix:<pair key>")``: a uniform sample
that depends only on the seed and the keys, not on the order rows are read in. Test pairs are never
sampled away: the mix applies to training data.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from json.encoder import encode_basestring as _json_string

import numpy as np
import pyarrow as pa

from agreement.aggregation import dawid_skene_long
from annotation.voting import Ballot, majority_label

STRENGTHS: tuple[str, ...] = ("significantly_better", "better", "slightly_better", "negligibly_better")

# Llama 2, Table 27: the margin m(r) in -log(sigmoid(r_chosen - r_rejected - m(r))).
MARGIN_TABLES: dict[str, dict[str, float]] = {
    "none": dict.fromkeys(STRENGTHS, 0.0),
    "small": {"significantly_better": 1.0, "better": 2 / 3, "slightly_better": 1 / 3, "negligibly_better": 0.0},
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
}

SAFETY_BINS: tuple[str, ...] = ("chosen_safe_other_unsafe", "both_safe", "both_unsafe")
FORBIDDEN_SAFETY_LABEL = "chosen_unsafe_other_safe"
# Ties among the majority's safety labels go to the label that says more about unsafety; a tie
# with the forbidden label excludes the pair.
_SAFETY_TIE_ORDER = (FORBIDDEN_SAFETY_LABEL, "both_unsafe", "chosen_safe_other_unsafe", "both_safe")

TRAIN, TEST = "train", "test"
MIXES: tuple[str, ...] = ("none", "helpfulness", "safety")
# Where a pair came from: Preflab's own batches by focus, or imported data by the source's focus.
COMPONENTS: tuple[str, ...] = ("helpfulness", "safety", "external_helpfulness", "external_safety")


def margin_for(strength: str | None, table: str) -> float:
    """The margin for a strength code under a margin table; 0 when the strength is unknown."""
    if table not in MARGIN_TABLES:
        raise ValueError(f"unknown margin table {table!r}; use one of {', '.join(MARGIN_TABLES)}")
    if not strength:
        return 0.0
    try:
        return MARGIN_TABLES[table][strength]
    except KeyError:
        raise ValueError(f"unknown strength {strength!r}; use one of {', '.join(STRENGTHS)}") from None


# --- which comparisons become pairs -----------------------------------------------------------


class Exclusion(StrEnum):
    REPEAT = "repeat"
    INCOMPLETE = "incomplete"
    NO_ELIGIBLE_RATINGS = "no_eligible_ratings"
    TIED = "tied"
    NOT_UNANIMOUS = "not_unanimous"
    BELOW_MIN_AGREEMENT = "below_min_agreement"
    CHOSEN_UNSAFE_OTHER_SAFE = "chosen_unsafe_other_safe"
    BELOW_MIN_POSTERIOR = "below_min_posterior"


EXCLUSION_EXPLANATIONS: dict[str, str] = {
    Exclusion.REPEAT: "a repeat of another comparison shown again to check consistency (would duplicate a pair)",
    Exclusion.INCOMPLETE: "not yet rated by its batch's overlap",
    Exclusion.NO_ELIGIBLE_RATINGS: "every rating was by an excluded annotator or outside the selected vendors",
    Exclusion.TIED: "the raters split evenly: no majority",
    Exclusion.NOT_UNANIMOUS: "the raters did not all choose the same response (unanimous only)",
    Exclusion.BELOW_MIN_AGREEMENT: "fewer raters than the minimum agreement chose the majority response",
    Exclusion.CHOSEN_UNSAFE_OTHER_SAFE: "the chosen response is unsafe and the other safe: never used for training",
    Exclusion.BELOW_MIN_POSTERIOR: "the Dawid-Skene posterior of the label is below the minimum posterior",
}

MAJORITY, DAWID_SKENE = "majority", "dawid_skene"
LABEL_SOURCES: tuple[str, ...] = (MAJORITY, DAWID_SKENE)
# Dawid-Skene's EM stops when no posterior moves by more than this in an iteration (as the agreement
# reports do, agreement.reliability.DAWID_SKENE_TOLERANCE).
DAWID_SKENE_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class RatingVote:
    """One rating as the builder sees it. `chosen` is "a" or "b"; `safety_label` is relative to it."""

    annotator_id: int
    chosen: str
    strength: str
    safety_label: str = ""
    vendor_id: int | None = None


@dataclass(frozen=True)
class LabelRules:
    """The selection's rules on ratings. `vendors` None means every vendor."""

    min_agreement: float | None = None
    unanimous_only: bool = False
    exclude_annotators: frozenset[int] = frozenset()
    vendors: frozenset[int] | None = None
    label_source: str = MAJORITY
    min_posterior: float | None = None  # Dawid-Skene labels only

    def counts(self, vote: RatingVote) -> bool:
        """Whether this rating takes part in the label."""
        if vote.annotator_id in self.exclude_annotators:
            return False
        return self.vendors is None or vote.vendor_id in self.vendors


@dataclass(frozen=True, slots=True)
class PairLabel:
    choice: str  # "a" or "b"
    strength: str
    safety_label: str  # "" outside safety batches
    agreement: float  # share of the eligible raters who chose `choice`
    n_ratings: int  # eligible ratings behind the label
    posterior: float | None = None  # Dawid-Skene posterior of `choice`; None for majority labels


@dataclass(frozen=True, slots=True)
class Decision:
    label: PairLabel | None
    exclusion: Exclusion | None = None
    dropped_ratings: int = 0  # ratings left out by the rater filters


def majority_safety(labels: Iterable[str]) -> str:
    """The most common safety label of the majority side ("" when none was given)."""
    counts = Counter(label for label in labels if label)
    if not counts:
        return ""
    top = max(counts.values())
    tied = [label for label in _SAFETY_TIE_ORDER if counts.get(label) == top]
    # A label outside the known bins can only come from a bad edit; it never wins a tie.
    return tied[0] if tied else max(counts, key=counts.__getitem__)


@dataclass(frozen=True, slots=True)
class EstimatedLabel:
    """A comparison's Dawid-Skene label: the chosen side ("a" or "b") and its posterior probability."""

    choice: str
    posterior: float


def decide(
    votes: Sequence[RatingVote],
    rules: LabelRules,
    *,
    complete: bool,
    is_repeat: bool = False,
    estimated: EstimatedLabel | None = None,
) -> Decision:
    """Turn one comparison's ratings into a pair label, or the reason it is left out.

    With ``rules.label_source == "dawid_skene"`` the label is ``estimated`` (from
    :func:`dawid_skene_labels`), excluded when its posterior is below ``rules.min_posterior``.
    """
    if is_repeat:
        return Decision(None, Exclusion.REPEAT)
    if not complete:
        return Decision(None, Exclusion.INCOMPLETE)
    kept = [vote for vote in votes if rules.counts(vote)]
    dropped = len(votes) - len(kept)
    if not kept:
        return Decision(None, Exclusion.NO_ELIGIBLE_RATINGS, dropped)
    posterior = None
    if rules.label_source == DAWID_SKENE:
        if estimated is None:  # every eligible rating was left out of the fit: nothing to estimate
            return Decision(None, Exclusion.NO_ELIGIBLE_RATINGS, dropped)
        # The same small tolerance as the agreement floor, so 0.9 typed keeps a posterior of 0.8999999.
        if rules.min_posterior is not None and estimated.posterior < rules.min_posterior - 1e-9:
            return Decision(None, Exclusion.BELOW_MIN_POSTERIOR, dropped)
        choice, posterior = estimated.choice, estimated.posterior
        supporters = [vote for vote in kept if vote.chosen == choice]
        strength = (
            majority_label([Ballot(chosen=choice, strength=v.strength) for v in supporters]).strength
            if supporters
            else ""
        )
    else:
        label = majority_label([Ballot(chosen=v.chosen, strength=v.strength) for v in kept])
        if label.vote == "tied":
            return Decision(None, Exclusion.TIED, dropped)
        choice, strength = label.choice, label.strength
        supporters = [vote for vote in kept if vote.chosen == choice]
    agreement = len(supporters) / len(kept)
    if rules.unanimous_only and len(supporters) < len(kept):
        return Decision(None, Exclusion.NOT_UNANIMOUS, dropped)
    # A small tolerance so "2/3" typed as 0.667 or 0.6667 keeps the two-of-three pairs it means.
    if rules.min_agreement is not None and agreement < rules.min_agreement - 1e-3:
        return Decision(None, Exclusion.BELOW_MIN_AGREEMENT, dropped)
    safety = majority_safety(vote.safety_label for vote in supporters)
    if safety == FORBIDDEN_SAFETY_LABEL:
        return Decision(None, Exclusion.CHOSEN_UNSAFE_OTHER_SAFE, dropped)
    return Decision(PairLabel(choice, strength, safety, agreement, len(kept), posterior), None, dropped)


@dataclass(frozen=True)
class EstimatedLabels:
    """Dawid-Skene labels of one batch's comparisons: sorted ids, P(A better) and the convergence."""

    comparison_ids: np.ndarray
    posterior_a: np.ndarray
    convergence: dict

    def get(self, comparison_id: int) -> EstimatedLabel | None:
        at = int(np.searchsorted(self.comparison_ids, comparison_id))
        if at >= self.comparison_ids.size or self.comparison_ids[at] != comparison_id:
            return None
        p = float(self.posterior_a[at])
        # A exactly at one half goes to A, as the fit's argmax does.
        return EstimatedLabel("a", p) if p >= 0.5 else EstimatedLabel("b", 1.0 - p)


def dawid_skene_labels(votes: Iterable[tuple[int, RatingVote]], rules: LabelRules) -> EstimatedLabels | None:
    """Fit Dawid-Skene on (comparison id, rating) pairs, the ratings the label rules count; None if none.

    Pass one batch's regular ratings (not repeats, not ratings of gold made after it was marked):
    each annotator's confusion matrix is estimated from everything they rated in it, incomplete
    comparisons included. Classes: 0 = A, 1 = B.
    """
    comparisons, annotators, labels = [], [], []
    for comparison_id, vote in votes:
        if rules.counts(vote):
            comparisons.append(comparison_id)
            annotators.append(vote.annotator_id)
            labels.append(0 if vote.chosen == "a" else 1)
    if not comparisons:
        return None
    comparison_ids, items = np.unique(np.asarray(comparisons, dtype=np.int64), return_inverse=True)
    _, annotator_index = np.unique(np.asarray(annotators, dtype=np.int64), return_inverse=True)
    fit = dawid_skene_long(
        items, annotator_index, np.asarray(labels, dtype=np.int64), n_classes=2, tol=DAWID_SKENE_TOLERANCE
    )
    return EstimatedLabels(comparison_ids, fit.posteriors[:, 0].copy(), fit.convergence())


def decide_gold(votes: Sequence[RatingVote], rules: LabelRules, *, choice: str, strength: str) -> Decision:
    """A gold comparison's pair: its known answer is the label (annotation.services.comparison_gold_mark).

    `votes` are the ratings given before it was marked gold (later ones test the annotators and
    never make a label). The strength is the answer's, else the median of the eligible raters who
    chose the answer, else unknown (margin 0). The agreement filters do not apply: the answer is
    known. The safety rule does: the safety bin is that of the raters who chose the answer.
    """
    kept = [vote for vote in votes if rules.counts(vote)]
    supporters = [vote for vote in kept if vote.chosen == choice]
    if not strength and supporters:
        strength = majority_label([Ballot(chosen=choice, strength=v.strength) for v in supporters]).strength
    safety = majority_safety(vote.safety_label for vote in supporters)
    dropped = len(votes) - len(kept)
    if safety == FORBIDDEN_SAFETY_LABEL:
        return Decision(None, Exclusion.CHOSEN_UNSAFE_OTHER_SAFE, dropped)
    agreement = len(supporters) / len(kept) if kept else 1.0
    return Decision(PairLabel(choice, strength, safety, agreement, len(kept)), None, dropped)


# --- held-out test sets -----------------------------------------------------------------------


def unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key), the same on every machine and Python version."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_key(dialogue_id: int) -> str:
    return f"dialogue:{dialogue_id}"


def split_for(u: float, threshold: float) -> str:
    return TEST if u < threshold else TRAIN


def external_split(usage: str, *, sha256: str, row: int, seed: int = 0, test_fraction: float = 0.0) -> str:
    """The split of an imported row: the source's usage decides; "split" hashes (seed, file, row), so the
    same file split with the same seed gives the same held-out rows in every build and on every install."""
    if usage == TEST:
        return TEST
    if usage == "split":
        return split_for(unit_hash(seed, f"external:{sha256}:{row}"), test_fraction)
    return TRAIN


def count_threshold(hashes: Iterable[float], count: int, max_fraction: float) -> float:
    """The threshold that puts about `count` of these hashes in the test set, capped at `max_fraction`.

    Test is ``u < threshold``, so the threshold is the (count + 1)-th smallest hash: exactly `count`
    hashes lie below it (fewer when several comparisons share a dialogue). With `count` or fewer
    hashes the cap applies. Memory is O(count).
    """
    if count < 0 or not 0.0 <= max_fraction <= 1.0:
        raise ValueError("count must be >= 0 and max_fraction within [0, 1]")
    smallest = heapq.nsmallest(count + 1, hashes)
    threshold = smallest[count] if len(smallest) > count else 1.0
    return min(threshold, max_fraction)


# --- data mixes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixRatios:
    helpfulness_other_ratio: float = 1.0  # sampled other data per helpfulness pair
    safety_share: float = 0.9  # share of safety data in the safety mix

    def __post_init__(self) -> None:
        if self.helpfulness_other_ratio < 0:
            raise ValueError("helpfulness_other_ratio must be >= 0")
        if not 0.0 < self.safety_share <= 1.0:
            raise ValueError("safety_share must be in (0, 1]")


@dataclass(frozen=True)
class MixPlan:
    mix: str
    keep: tuple[str, ...]  # components kept whole
    sample_from: tuple[str, ...]  # components pooled and sampled uniformly
    target: int  # pairs wanted from the pool
    available: int  # pairs in the pool
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def sample_size(self) -> int:
        return min(self.target, self.available)

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.available)


def mix_plan(mix: str, train_counts: Mapping[str, int], ratios: MixRatios = MixRatios()) -> MixPlan:
    """How many training pairs of each component a mix keeps (`train_counts`: pairs per component)."""
    count = lambda names: sum(train_counts.get(name, 0) for name in names)  # noqa: E731
    if mix == "none":
        return MixPlan(mix, COMPONENTS, (), 0, 0)
    if mix == "helpfulness":
        keep = ("helpfulness",)
        pool = ("safety", "external_helpfulness", "external_safety")
        target = round(count(keep) * ratios.helpfulness_other_ratio)
        return MixPlan(mix, keep, pool, target, count(pool), {"other_per_helpfulness": ratios.helpfulness_other_ratio})
    if mix == "safety":
        keep = ("safety", "external_safety")
        pool = ("helpfulness", "external_helpfulness")
        target = round(count(keep) * (1 - ratios.safety_share) / ratios.safety_share)
        return MixPlan(mix, keep, pool, target, count(pool), {"safety_share": ratios.safety_share})
    raise ValueError(f"unknown mix {mix!r}; use one of {', '.join(MIXES)}")


def mix_key(pair_key: str) -> str:
    return f"mix:{pair_key}"


def uniform_sample(keys: Iterable[str], k: int, seed: int) -> list[str]:
    """The `k` keys with the smallest `unit_hash(seed, mix_key(key))`: a uniform sample without replacement."""
    return heapq.nsmallest(k, keys, key=lambda key: unit_hash(seed, mix_key(key)))


# --- rows in the formats trainers read ----------------------------------------------------------

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One pair with its texts, as it is written out."""

    id: str  # "comparison:<id>" or "external:<id>"
    split: str
    context: Sequence[Message]  # the dialogue before the responses, ending with the user turn
    chosen: str
    rejected: str
    margin: float
    strength: str = ""  # "" when unknown (imported data)
    safety_label: str = ""
    focus: str = ""
    source: str = "preflab"  # "preflab" or "external:<source name>"
    batch: str = ""
    comparison_id: int | None = None
    chosen_response_id: int | None = None
    rejected_response_id: int | None = None


# Column order of the TRL and HH exports (datasets keeps it). String columns use "" for "none", never
# null: a JSON block that is all null would be read as type null and clash with the next block.
TRL_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "id",
    "strength",
    "safety_label",
    "focus",
    "source",
    "batch",
    "comparison_id",
    "chosen_response_id",
    "rejected_response_id",
)
HH_COLUMNS = ("chosen", "rejected", "id", "margin", "strength", "safety_label", "focus", "source", "batch")


def trl_row(row: ExportRow) -> dict:
    """TRL's conversational preference format with an explicit prompt, plus Preflab's columns."""
    return {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in row.context],
        "chosen": [{"role": "assistant", "content": row.chosen}],
        "rejected": [{"role": "assistant", "content": row.rejected}],
        "margin": row.margin,
        "id": row.id,
        "strength": row.strength,
        "safety_label": row.safety_label,
        "focus": row.focus,
        "source": row.source,
        "batch": row.batch,
        "comparison_id": row.comparison_id,
        "chosen_response_id": row.chosen_response_id,
        "rejected_response_id": row.rejected_response_id,
    }


# Labels, batch and source names repeat on every row: encode each once.
_json_label = lru_cache(maxsize=4096)(_json_string)


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _json_messages(messages: Iterable[Message]) -> str:
    return (
        "["
        + ",".join(f'{{"role":{_json_label(m["role"])},"content":{_json_string(m["content"])}}}' for m in messages)
        + "]"
    )


def _json_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"margin {value!r} is not a finite number")
    return repr(float(value))


def trl_json_line(row: ExportRow) -> str:
    """`json.dumps(trl_row(row), ensure_ascii=False)` without the dictionaries: the export's hot path."""
    return (
        f'{{"prompt":{_json_messages(row.context)},'
        f'"chosen":[{{"role":"assistant","content":{_json_string(row.chosen)}}}],'
        f'"rejected":[{{"role":"assistant","content":{_json_string(row.rejected)}}}],'
        f'"margin":{_json_float(row.margin)},"id":{_json_string(row.id)},'
        f'"strength":{_json_label(row.strength)},"safety_label":{_json_label(row.safety_label)},'
        f'"focus":{_json_label(row.focus)},"source":{_json_label(row.source)},"batch":{_json_label(row.batch)},'
        f'"comparison_id":{_json_int(row.comparison_id)},'
        f'"chosen_response_id":{_json_int(row.chosen_response_id)},'
        f'"rejected_response_id":{_json_int(row.rejected_response_id)}}}\n'
    )


_HH_SPEAKER = {"user": "Human", "assistant": "Assistant"}


def hh_transcript(context: Iterable[Message], response: str) -> str:
    """An Anthropic HH-RLHF transcript: "\\n\\nHuman: ...\\n\\nAssistant: ..." ending with `response`.

    HH-RLHF has no system role: a system message is written as the text before the first
    "\\n\\nHuman:", which is where Preflab's importer reads one back from.
    """
    parts = [
        m["content"] if m["role"] == "system" else f"\n\n{_HH_SPEAKER[m['role']]}: {m['content']}" for m in context
    ]
    parts.append(f"\n\nAssistant: {response}")
    return "".join(parts)


def hh_row(row: ExportRow) -> dict:
    return {
        "chosen": hh_transcript(row.context, row.chosen),
        "rejected": hh_transcript(row.context, row.rejected),
        "id": row.id,
        "margin": row.margin,
        "strength": row.strength,
        "safety_label": row.safety_label,
        "focus": row.focus,
        "source": row.source,
        "batch": row.batch,
    }


def hh_json_line(row: ExportRow) -> str:
    return json.dumps(hh_row(row), ensure_ascii=False) + "\n"


MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TRL_SCHEMA = pa.schema(
    [
        ("prompt", MESSAGES),
        ("chosen", MESSAGES),
        ("rejected", MESSAGES),
        ("margin", pa.float64()),
        ("id", pa.string()),
        ("strength", pa.string()),
        ("safety_label", pa.string()),
        ("focus", pa.string()),
        ("source", pa.string()),
        ("batch", pa.string()),
        ("comparison_id", pa.int64()),
        ("chosen_response_id", pa.int64()),
        ("rejected_response_id", pa.int64()),
    ]
)
HH_SCHEMA = pa.schema(
    [
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("id", pa.string()),
        ("margin", pa.float64()),
        ("strength", pa.string()),
        ("safety_label", pa.string()),
        ("focus", pa.string()),
        ("source", pa.string()),
        ("batch", pa.string()),
    ]
)


def _single_messages(role: str, contents: list[str]) -> pa.Array:
    """A list<struct> column where every row holds one message, built from flat arrays (no dicts)."""
    n = len(contents)
    structs = pa.StructArray.from_arrays(
        [pa.array([role] * n, pa.string()), pa.array(contents, pa.string())], names=["role", "content"]
    )
    return pa.ListArray.from_arrays(pa.array(range(n + 1), pa.int32()), structs, type=MESSAGES)


def trl_arrow(rows: Sequence[ExportRow]) -> pa.RecordBatch:
    offsets, roles, contents = [0], [], []
    for row in rows:
        for message in row.context:
            roles.append(message["role"])
            contents.append(message["content"])
        offsets.append(len(roles))
    prompt = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays(
            [pa.array(roles, pa.string()), pa.array(contents, pa.string())], names=["role", "content"]
        ),
        type=MESSAGES,
    )
    columns = [
        prompt,
        _single_messages("assistant", [r.chosen for r in rows]),
        _single_messages("assistant", [r.rejected for r in rows]),
        pa.array([r.margin for r in rows], pa.float64()),
        pa.array([r.id for r in rows], pa.string()),
        pa.array([r.strength for r in rows], pa.string()),
        pa.array([r.safety_label for r in rows], pa.string()),
        pa.array([r.focus for r in rows], pa.string()),
        pa.array([r.source for r in rows], pa.string()),
        pa.array([r.batch for r in rows], pa.string()),
        pa.array([r.comparison_id for r in rows], pa.int64()),
        pa.array([r.chosen_response_id for r in rows], pa.int64()),
        pa.array([r.rejected_response_id for r in rows], pa.int64()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=TRL_SCHEMA)


def hh_arrow(rows: Sequence[ExportRow]) -> pa.RecordBatch:
    records = [hh_row(row) for row in rows]
    return pa.RecordBatch.from_pylist(records, schema=HH_SCHEMA)


# Raw ratings: one row per annotator rating of a comparison in the dataset.
RATINGS_SCHEMA = pa.schema(
    [
        ("rating_id", pa.int64()),
        ("comparison_id", pa.int64()),
        ("split", pa.string()),
        ("batch", pa.string()),
        ("focus", pa.string()),
        ("annotator", pa.string()),  # pseudonym, never the person
        ("vendor", pa.string()),
        ("chosen", pa.string()),  # "a" or "b", storage order
        ("chosen_response_id", pa.int64()),
        ("rejected_response_id", pa.int64()),
        ("strength", pa.string()),
        ("safety_label", pa.string()),
        ("shown_left", pa.string()),
        ("seconds_spent", pa.float64()),
        ("created_at", pa.string()),  # ISO 8601, UTC
        ("used_in_label", pa.bool_()),  # False when the selection's rater filters left it out
        ("ds_label", pa.string()),  # the comparison's Dawid-Skene label in its batch's agreement report
        ("ds_posterior", pa.float64()),  # its posterior; null before the batch's first report
    ]
)
RATINGS_COLUMNS = tuple(RATINGS_SCHEMA.names)


def ratings_json_line(record: Mapping) -> str:
    return json.dumps({name: record[name] for name in RATINGS_COLUMNS}, ensure_ascii=False) + "\n"


def ratings_arrow(records: Sequence[Mapping]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(list(records), schema=RATINGS_SCHEMA)


# --- counts -----------------------------------------------------------------------------------


def summarize_counts(groups: Iterable[tuple[str, str, str, str, int]]) -> dict:
    """Counts per split by strength, safety bin and component from (split, component, strength, safety, n)."""
    summary: dict = {"total": 0, "by_split": {TRAIN: 0, TEST: 0}}
    for key in ("by_strength", "by_safety", "by_component"):
        summary[key] = {TRAIN: {}, TEST: {}}
    for split, component, strength, safety, n in groups:
        summary["total"] += n
        summary["by_split"][split] = summary["by_split"].get(split, 0) + n
        for key, value in (("by_strength", strength or "unknown"), ("by_component", component)):
            bucket = summary[key].setdefault(split, {})
            bucket[value] = bucket.get(value, 0) + n
        if safety:
            bucket = summary["by_safety"].setdefault(split, {})
            bucket[safety] = bucket.get(safety, 0) + n
    return summary
