"""A reward model saved as a finished run, without training it: all-MiniLM-L6-v2 with a new scalar
head drawn from a fixed seed, written where a run keeps its final model. Scoring with it is the real
path (load, render, tokenize, forward); its preferences are arbitrary but fixed, which is all the
tests of reward-model *users* (judging, best-of-K, pair rules) need."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from preference_data.models import DatasetBuild
from rewardmodel.models import RunStatus, TrainingRun
from rewardmodel.services.runs import MINILM, resolve_base_path
from tests.rewardmodel.runs import minilm_checkpoint


def saved_reward_model(name: str = "rm", *, kind: str = "helpfulness", seed: int = 0) -> TrainingRun:
    run = TrainingRun.objects.create(
        name=name,
        kind=kind,
        dataset=DatasetBuild.objects.create(name=f"{name} data"),
        base_checkpoint=minilm_checkpoint(),
        status=RunStatus.SUCCEEDED,
        output_path="final",
    )
    base = resolve_base_path(MINILM)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.model_max_length = 128
    model.save_pretrained(run.model_dir)
    tokenizer.save_pretrained(run.model_dir)
    return run
