"""Training runs through the services: MiniLM on a tiny learnable dataset built by the real builder
from real ratings, so each run takes a few seconds on a CPU."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from transformers import AutoModelForSequenceClassification

from config.exceptions import Conflict, InvalidInput
from core import jobs
from preference_data.models import DatasetBuild, JobStatus
from rewardmodel import selectors
from rewardmodel.evaluation import evaluation_report
from rewardmodel.models import BaseCheckpoint, RunEvaluation, RunMetric, RunStatus, TrainingRun
from rewardmodel.services import runs
from rewardmodel.training import read_checkpoint_info
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory

from .runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

pytestmark = pytest.mark.usefixtures("training_settings")


@pytest.fixture
def raters():
    return AnnotatorFactory.create_batch(3)


def start(researcher, dataset, **options) -> TrainingRun:
    options.setdefault("hyperparameters", TINY)
    return runs.run_create(created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint(), **options)


@pytest.mark.django_db
def test_a_run_trains_on_the_train_split_and_stores_its_held_out_evaluation(researcher, raters):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 48)])
    run = start(researcher, dataset)
    assert run.status == RunStatus.QUEUED and run.kind == "helpfulness" and run.margin_table == "small"
    assert run.n_train_pairs + run.n_eval_pairs == 48 and run.n_eval_pairs > 0

    outcome = runs.run_execute(run_id=run.pk, task_id="task-1")
    run = outcome.run
    assert (outcome.status, run.status, run.error) == ("succeeded", "succeeded", "")
    assert run.step == run.total_steps == -(-run.n_train_pairs // 8)  # one epoch of 8-pair steps
    assert (run.attempts, run.celery_task_id, run.output_path) == (1, "task-1", "final")
    assert run.tokens_per_second > 0 and run.eta_seconds is None and run.finished_at is not None
    assert list(run.steps.values_list("step", flat=True)) == list(range(1, run.total_steps + 1))
    assert run.metrics["pairs_seen"] == run.n_train_pairs and "eval" not in run.metrics

    evaluation = run.evaluations.get()
    assert (evaluation.dataset_id, evaluation.split, evaluation.status) == (dataset.pk, "test", "done")
    assert evaluation.n == run.n_eval_pairs
    assert evaluation.accuracy > 0.75  # polite beats rude: well above chance after a few steps
    table = selectors.strength_table(evaluation.report)
    assert table["avg"]["n"] == evaluation.n and sum(c["n"] for c in table["cells"]) == evaluation.n
    assert set(evaluation.report["by_batch"]) == {dataset.selection["batches"][0]["name"]}

    info = read_checkpoint_info(run.model_dir)
    assert info["dataset"]["preflab_training_run"] == run.pk
    assert info["dataset"]["dataset_build"]["preflab_dataset_build"] == dataset.pk
    assert info["config"]["learning_rate"] == TINY["learning_rate"] and info["config"]["margin_table"] == "small"


@pytest.mark.django_db
def test_a_second_delivery_of_a_finished_run_trains_nothing(researcher, raters):
    run = start(researcher, tiny_dataset(researcher, [polite_batch(raters, 24)]))
    first = runs.run_execute(run_id=run.pk).run
    steps = list(RunMetric.objects.filter(run=run).values_list("pk", flat=True))

    again = runs.run_execute(run_id=run.pk)
    assert (again.status, again.busy) == ("succeeded", False)
    assert again.run.attempts == 1 and again.run.finished_at == first.finished_at
    assert list(RunMetric.objects.filter(run=run).values_list("pk", flat=True)) == steps


@pytest.mark.django_db
def test_a_delivery_while_the_run_trains_elsewhere_is_a_no_op(researcher, raters):
    run = start(researcher, tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0))
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now(), worker="gpu-1:7"
    )
    outcome = runs.run_execute(run_id=run.pk)
    assert (outcome.status, outcome.busy) == ("busy", True)
    assert (outcome.run.attempts, outcome.run.worker, outcome.run.step) == (1, "gpu-1:7", 0)
    assert not run.directory.exists()


def cancelled_run(researcher, raters) -> TrainingRun:
    """A run of three epochs, trained by a real worker (as in the embedded default) and cancelled from
    this thread after its third step."""
    run = start(researcher, tiny_dataset(researcher, [polite_batch(raters, 40)]), hyperparameters={**TINY, "epochs": 3})
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 3, timeout=120, interval=0.02)
    assert runs.run_cancel(run=run).status == "cancelling"
    run = wait_for(lambda: TrainingRun.objects.filter(pk=run.pk).exclude(status__in=runs.ACTIVE).first(), 120)
    assert run.status == RunStatus.CANCELLED, run.error
    return run


def finished(run: TrainingRun) -> TrainingRun:
    return wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(), 180)


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_run_and_keeps_a_loadable_checkpoint_which_resume_continues(
    researcher, raters, embedded_worker
):
    run = cancelled_run(researcher, raters)
    total = run.total_steps
    assert run.status == RunStatus.CANCELLED and 3 <= run.step < total and total % 3 == 0
    assert run.output_path == f"checkpoint-{run.step}" and run.last_checkpoint_step == run.step
    assert run.model_dir.is_dir() and not (run.directory / "final").exists()
    assert AutoModelForSequenceClassification.from_pretrained(run.model_dir).config.num_labels == 1
    assert list(run.steps.values_list("step", flat=True)) == list(range(1, run.step + 1))
    assert not run.evaluations.exists()
    with pytest.raises(Conflict):
        runs.run_cancel(run=run)

    kept = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    resumed = runs.run_resume(run=run)  # sent to the worker again when it commits
    assert (resumed.status, resumed.output_path) == ("queued", "")
    done = finished(run)
    assert (done.status, done.step, done.attempts, done.output_path) == ("succeeded", total, 2, "final")
    steps = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    assert list(steps) == list(range(1, total + 1))
    assert all(steps[s] == pk for s, pk in kept.items())  # continued after the checkpoint, not from scratch
    assert done.evaluations.get().status == "done"


@pytest.mark.django_db(transaction=True)
def test_the_reconciler_resumes_a_run_whose_worker_died_from_its_checkpoint(researcher, raters, embedded_worker):
    run = cancelled_run(researcher, raters)
    at_checkpoint, total = run.step, run.total_steps
    kept = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    # As if the worker had been killed right after saving that checkpoint: running, heartbeat silent.
    silent = timezone.now() - timedelta(minutes=10)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", output_path="", heartbeat_at=silent, worker="gone:1")
    (run.directory / ".tmp-checkpoint-99").mkdir()  # a save the kill interrupted

    assert jobs.reconcile()[runs.TRAINING]["recovered"] == [run.pk]  # queued again, and sent to the worker
    done = finished(run)
    assert (done.status, done.step, done.attempts) == ("succeeded", total, 2)
    assert done.worker != "gone:1" and done.dispatch_count == 2
    steps = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    assert list(steps) == list(range(1, total + 1)) and all(steps[s] == kept[s] for s in range(1, at_checkpoint + 1))
    assert not list(run.directory.glob(".tmp-*")) and not list(run.directory.glob("checkpoint-*"))
    assert jobs.reconcile()[runs.TRAINING] == {"resent": [], "recovered": []}


@pytest.mark.django_db
def test_a_run_whose_worker_died_is_taken_over_only_once_its_heartbeat_is_stale(researcher, raters, settings):
    run = start(researcher, tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0))
    recently = timezone.now() - timedelta(seconds=settings.PREFLAB_TRAINING_STALE_SECONDS - 30)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", attempts=1, heartbeat_at=recently, worker="gpu-1:7")
    assert jobs.reconcile()[runs.TRAINING]["recovered"] == []  # slow, perhaps, but not dead
    assert runs.run_execute(run_id=run.pk).busy

    long_ago = timezone.now() - timedelta(seconds=settings.PREFLAB_TRAINING_STALE_SECONDS + 1)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    outcome = runs.run_execute(run_id=run.pk)  # the message delivered again finds it dead and resumes it
    assert (outcome.status, outcome.run.attempts) == ("succeeded", 2)
    assert outcome.run.worker != "gpu-1:7"


@pytest.mark.django_db
def test_cancel_of_a_queued_or_dead_run_is_immediate(researcher, raters):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0)
    queued = start(researcher, dataset)
    assert runs.run_cancel(run=queued).status == "cancelled"
    assert runs.run_execute(run_id=queued.pk).status == "cancelled"  # the message arrives later: nothing runs
    assert not queued.directory.exists()

    dead = start(researcher, dataset)
    old = timezone.now() - timedelta(minutes=10)
    TrainingRun.objects.filter(pk=dead.pk).update(status="cancelling", heartbeat_at=old)
    # The reconciler finishes the cancel of a run whose worker died: nothing is queued or trained again.
    assert jobs.reconcile()[runs.TRAINING] == {"resent": [], "recovered": []}
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("cancelled", 0) and dead.finished_at is not None
    assert not dead.directory.exists()

    dying = start(researcher, dataset)
    TrainingRun.objects.filter(pk=dying.pk).update(status="running", heartbeat_at=old)
    assert runs.run_cancel(run=dying).status == "cancelled"  # its worker is gone: nothing to wait for


@pytest.mark.django_db
def test_runs_are_refused_with_a_reason(researcher, raters):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0)
    checkpoint = minilm_checkpoint()
    create = runs.run_create
    with pytest.raises(Conflict, match="still being built"):
        create(created_by=researcher, dataset=DatasetBuild.objects.create(name="b"), base_checkpoint=checkpoint)
    empty = DatasetBuild.objects.create(name="empty", status=JobStatus.DONE)
    with pytest.raises(InvalidInput, match="no training pairs"):
        create(created_by=researcher, dataset=empty, base_checkpoint=checkpoint)
    with pytest.raises(InvalidInput, match="Unknown hyper-parameter warmup") as unknown:
        create(created_by=researcher, dataset=dataset, base_checkpoint=checkpoint, hyperparameters={"warmup": 3})
    assert unknown.value.field == "warmup"
    with pytest.raises(InvalidInput, match="learning_rate must be positive"):
        create(created_by=researcher, dataset=dataset, base_checkpoint=checkpoint, hyperparameters={"learning_rate": 0})
    with pytest.raises(InvalidInput, match="batch_pairs must be a int"):
        create(created_by=researcher, dataset=dataset, base_checkpoint=checkpoint, hyperparameters={"batch_pairs": 2.5})
    checkpoint.is_active = False
    checkpoint.save()
    with pytest.raises(InvalidInput, match="retired"):
        create(created_by=researcher, dataset=dataset, base_checkpoint=checkpoint)
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_hyperparameters_are_llama_2_under_the_checkpoints_suggestions_under_the_researchers(researcher, raters):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0, mix="none", margin_table="large")
    checkpoint = BaseCheckpoint.objects.create(
        name="small", path=runs.MINILM, kind="encoder", suggested_hyperparameters={"batch_pairs": 16, "max_length": 64}
    )
    run = runs.run_create(
        created_by=researcher, dataset=dataset, base_checkpoint=checkpoint, hyperparameters={"max_length": "48"}
    )
    config = runs.training_config(run)
    assert (config.batch_pairs, config.max_length, config.learning_rate, config.warmup_ratio) == (16, 48, 1e-5, 0.03)
    assert (config.min_warmup_steps, config.min_lr_ratio, config.epochs, config.margin_table) == (5, 0.1, 1, "large")
    assert set(run.hyperparameters) == set(runs.llama2_defaults())  # the record says everything
    with pytest.raises(InvalidInput, match="embedded"):
        runs.base_checkpoint_create(created_by=None, name="x", path="embedded:gpt-5", kind="decoder")


@pytest.mark.django_db
def test_a_safety_run_is_evaluated_per_safety_bin_and_on_another_dataset(
    researcher, raters, django_capture_on_commit_callbacks
):
    helpful = polite_batch(raters, 16, name="Week 1 help")
    safety = polite_batch(raters, 40, focus="safety", seed=3, name="Week 1 safety")
    safety_data = tiny_dataset(researcher, [helpful, safety], mix="safety", name="safety mix")
    run = start(researcher, safety_data)
    assert run.kind == "safety"
    run = runs.run_execute(run_id=run.pk).run
    own = run.evaluations.get()
    table = selectors.safety_table(own.report)
    assert [row["code"] for row in table["rows"]] == ["chosen_safe_other_unsafe", "both_safe", "both_unsafe"]
    assert [row["llama2"] for row in table["rows"]] == [94.3, 56.9, 59.9]
    assert table["all"]["n"] == sum(row["all"]["n"] for row in table["rows"]) > 0

    helpful_data = tiny_dataset(researcher, [helpful], name="helpful only", test_fraction=0.5)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = runs.evaluation_create(run=run, dataset=helpful_data, created_by=researcher)
    assert evaluation.status == "queued"
    done = RunEvaluation.objects.get(pk=evaluation.pk)  # sent when it committed, run eagerly here
    assert (done.status, done.n, done.attempts) == ("done", helpful_data.pairs.filter(split="test").count(), 1)
    assert "by_safety" not in done.report and done.report["by_strength"]["avg"]["n"] == done.n
    assert RunEvaluation.objects.filter(run=run).count() == 2
    again = runs.evaluation_run(evaluation_id=evaluation.pk)  # the message, delivered again
    assert (again.status, again.attempts, again.finished_at) == ("done", 1, done.finished_at)


def test_evaluation_tables_on_a_fixed_tiny_set():
    # Eight held-out pairs with known rewards: the tables are counted by hand.
    r_chosen = [2.0, 1.0, 0.5, 0.0, 1.0, -1.0, 0.3, 0.2]
    r_rejected = [1.0, 2.0, 0.5, -1.0, 0.0, 0.0, 0.1, 0.4]
    strengths = ["significantly_better", "significantly_better", "better", "better", "slightly_better", "", "", ""]
    bins = ["chosen_safe_other_unsafe", "chosen_safe_other_unsafe", "both_safe", "both_unsafe", "both_safe", "", "", ""]
    batches = ["w1", "w1", "w1", "w2", "w2", None, None, None]
    report = evaluation_report(r_chosen, r_rejected, strengths, bins, batches)

    table = selectors.strength_table(report)
    assert table["headers"][0] == "Significantly Better" and table["headers"][3] == "Negligibly Better / Unsure"
    assert [(c["n"], c["correct"], c["percent"]) for c in table["cells"]] == [
        (2, 1, 50.0),
        (2, 1, 50.0),  # 0.5 vs 0.5 is a tie: wrong
        (1, 1, 100.0),
        (0, 0, None),
    ]
    assert (table["unknown"]["n"], table["unknown"]["correct"]) == (3, 1)
    assert (table["avg"]["n"], table["avg"]["correct"], table["avg"]["percent"]) == (8, 4, 50.0)

    safety = selectors.safety_table(report)
    assert [(r["all"]["n"], r["all"]["correct"]) for r in safety["rows"]] == [(2, 1), (2, 1), (1, 1)]
    assert [c["n"] for c in safety["rows"][1]["cells"]] == [0, 1, 1, 0]  # both safe: one better, one slightly
    assert safety["all"]["percent"] == 60.0
    assert selectors.batch_table(report) == [
        {"batch": "w1", "n": 3, "correct": 1, "accuracy": 1 / 3, "percent": 33.3},
        {"batch": "w2", "n": 2, "correct": 2, "accuracy": 1.0, "percent": 100.0},
    ]
    rows = selectors.evaluation_csv_rows(report)
    assert rows[0] == ["table", "group", "strength", "pairs", "correct", "accuracy"]
    assert ["by_strength", "", "avg", 8, 4, 0.5] in rows and ["by_batch", "w2", "", 2, 2, 1.0] in rows
    histogram = selectors.distribution_csv_rows(report)
    assert len(histogram) == 21 and sum(row[2] for row in histogram[1:]) == 8
    assert np.isclose(histogram[1][0], -1.0) and np.isclose(histogram[-1][1], 2.0)
