"""TRL round trip: TRL's RewardTrainer trains on Preflab's exports (TRL and HH-RLHF) starting from a base
checkpoint as Preflab resolves it, and from a reward model as Preflab downloads it, with no code in
between: the tokenizers carry a chat template and an end-of-sequence token."""

import io
import math
import os
import zipfile

import datasets
import pytest
import torch
from trl import RewardConfig, RewardTrainer

from benchmarks.reward_training import TRAIN_TOPICS, synthetic_pairs
from preference_data import services
from preference_data.models import ExportFormat, JobStatus
from rewardmodel.archives import stream_zip
from rewardmodel.scoring import encode_many
from rewardmodel.services.runs import resolve_base_path
from rewardmodel.training import TrainingConfig, train_reward_model
from tests.factories import AnnotatorFactory

from .runs import minilm_checkpoint, polite_batch, tiny_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def raters():
    return AnnotatorFactory.create_batch(3)


@pytest.fixture(autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    datasets.disable_progress_bars()
    yield
    torch.set_num_threads(threads)


def exported_train_split(researcher, raters, export_format: str) -> datasets.Dataset:
    build = tiny_dataset(researcher, [polite_batch(raters, 12)])
    created = services.dataset_export_create(created_by=researcher, build=build, format=export_format, enqueue=False)
    done = services.dataset_export_run(export_id=created.pk)
    assert done.status == JobStatus.DONE, done.error
    return datasets.load_dataset("json", data_files={"train": str(done.directory / "train.jsonl")})["train"]


def train_a_few_steps(model: str, data: datasets.Dataset, output_dir) -> RewardTrainer:
    args = RewardConfig(
        output_dir=str(output_dir),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-4,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=data)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)
    assert any(not torch.equal(before[name], p) for name, p in trainer.model.named_parameters())
    return trainer


@pytest.mark.parametrize("export_format", [ExportFormat.TRL, ExportFormat.HH_RLHF])
def test_trl_trains_on_preflabs_export_from_the_registered_base_checkpoint(researcher, raters, export_format, tmp_path):
    data = exported_train_split(researcher, raters, export_format)
    base = resolve_base_path(minilm_checkpoint().path)  # "embedded:all-minilm-l6-v2", as registered
    trainer = train_a_few_steps(base, data, tmp_path / "trl")

    tokenizer, first = trainer.processing_class, trainer.train_dataset[0]
    if export_format == ExportFormat.TRL:
        # TRL reads the conversation exactly as Preflab's trainer does (prompt, then the chosen turn).
        row = data[0]
        [preflab_ids] = encode_many(tokenizer, [(row["prompt"], row["chosen"][0]["content"])], 10_000)
        assert first["chosen_ids"] == preflab_ids
        assert tokenizer.decode(first["chosen_ids"]).startswith("[CLS] user :")
    else:
        # HH transcripts are plain text: TRL closes each with the tokenizer's end-of-sequence token.
        assert tokenizer.eos_token == "[SEP]"
        assert tokenizer.decode(first["chosen_ids"]).startswith("[CLS] human :")


def test_trl_continues_training_a_downloaded_preflab_reward_model(researcher, raters, tmp_path):
    pairs = synthetic_pairs(8, seed=0, topics=TRAIN_TOPICS)
    cfg = TrainingConfig(learning_rate=1e-4, batch_pairs=8, micro_batch_pairs=8, max_length=32, checkpoint_every=0)
    saved = train_reward_model(cfg, resolve_base_path(minilm_checkpoint().path), pairs, output_dir=tmp_path / "rm")
    zipfile.ZipFile(io.BytesIO(b"".join(stream_zip(saved.path, "preflab-rm-1")))).extractall(tmp_path)

    data = exported_train_split(researcher, raters, ExportFormat.TRL)
    train_a_few_steps(str(tmp_path / "preflab-rm-1"), data, tmp_path / "trl")
