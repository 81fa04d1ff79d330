"""A database made before the comparison datasets became their own app migrates forward with its data.

ExternalSource, ExternalComparison, DatasetBuild, HeldOutThreshold, DatasetPair and DatasetExport moved
from `rewardmodel` to `preference_data` with their tables (preference_data/migrations/0001_initial.py,
rewardmodel/migrations/0005_datasets_move_to_preference_data.py): the rows the previous release wrote
must still be there, read through the new models, with their constraints; training runs and their
evaluations must still reach their datasets; the content types must follow the models.
"""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import ProtectedError

from preference_data.models import (
    DatasetBuild,
    DatasetExport,
    DatasetPair,
    ExternalComparison,
    ExternalSource,
    HeldOutThreshold,
    JobStatus,
    Split,
)
from rewardmodel.models import RunEvaluation, TrainingRun
from tests.helpers import migrate_to

# The previous release: rewardmodel's last migration before the move, and no preference_data app.
BEFORE_THE_MOVE = [("rewardmodel", "0004_best_of_k_previews"), ("preference_data", None)]


def state_before_the_move(latest) -> list[tuple[str, str]]:
    """Rewardmodel before the move, and every other app at its newest migration that does not build on
    the move (a later one, such as a sampling model pointing at a reward-model run, needs the new app)."""
    graph = MigrationExecutor(connection).loader.graph
    moved = {"rewardmodel", "preference_data"}
    before = set(graph.forwards_plan(("rewardmodel", "0004_best_of_k_previews")))

    def independent(node) -> bool:
        return all(dep[0] not in moved or dep in before for dep in graph.forwards_plan(node))

    nodes = [("rewardmodel", "0004_best_of_k_previews")]
    for node in latest:
        while node is not None and node[0] not in moved and not independent(node):
            parents = [parent.key for parent in graph.node_map[node].parents if parent.key[0] == node[0]]
            node = parents[0] if parents else None
        if node is not None and node[0] not in moved:
            nodes.append(node)
    return nodes


@pytest.mark.django_db(transaction=True)
def test_datasets_written_before_the_move_are_read_through_the_preference_data_app():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        executor = migrate_to(BEFORE_THE_MOVE)
        old = executor.loader.project_state(state_before_the_move(latest)).apps
        with pytest.raises(LookupError):
            old.get_app_config("preference_data")
        User = old.get_model("accounts", "User")
        Batch = old.get_model("annotation", "Batch")
        OldSource = old.get_model("rewardmodel", "ExternalSource")
        OldExternal = old.get_model("rewardmodel", "ExternalComparison")
        OldBuild = old.get_model("rewardmodel", "DatasetBuild")
        OldThreshold = old.get_model("rewardmodel", "HeldOutThreshold")
        OldPair = old.get_model("rewardmodel", "DatasetPair")
        OldExport = old.get_model("rewardmodel", "DatasetExport")
        OldCheckpoint = old.get_model("rewardmodel", "BaseCheckpoint")
        OldRun = old.get_model("rewardmodel", "TrainingRun")
        OldEvaluation = old.get_model("rewardmodel", "RunEvaluation")
        OldContentType = old.get_model("contenttypes", "ContentType")

        researcher = User.objects.create(username="res", role="researcher")
        batch = Batch.objects.create(name="week 1", week="2026-11-30")
        source = OldSource.objects.create(
            name="hh", focus="safety", format="hh_rlhf", file_type="jsonl", sha256="ab" * 32, row_count=1
        )
        context = [{"role": "user", "content": "Hi?"}]
        external = OldExternal.objects.create(
            source=source, row=0, context=context, chosen="Hello.", rejected="Go away.", strength="better"
        )
        counts = {"train": {"external_safety": 1}}
        build = OldBuild.objects.create(
            name="mix", mix="safety", margin_table="large", seed=7, status="done", counts=counts, created_by=researcher
        )
        threshold = OldThreshold.objects.create(
            batch=batch, seed=7, test_count=1000, max_fraction=0.1, threshold=0.25, comparisons_seen=40
        )
        pair = OldPair.objects.create(
            build=build,
            split="train",
            component="external_safety",
            external=external,
            strength="better",
            margin=2.0,
            sample_key=0.5,
        )
        export = OldExport.objects.create(build=build, format="trl", file_type="jsonl", status="done", rows_total=1)
        checkpoint = OldCheckpoint.objects.create(name="MiniLM", path="embedded:all-minilm-l6-v2", kind="encoder")
        run = OldRun.objects.create(name="rm", kind="safety", dataset=build, base_checkpoint=checkpoint)
        evaluation = OldEvaluation.objects.create(run=run, dataset=build, split="test")
        # The previous release's content type of the build (post_migrate made it there).
        OldContentType.objects.filter(app_label="preference_data", model="datasetbuild").delete()
        content_type, _ = OldContentType.objects.get_or_create(app_label="rewardmodel", model="datasetbuild")

        migrate_to(latest)
        ContentType.objects.clear_cache()

        moved = DatasetBuild.objects.get(pk=build.pk)
        assert (moved.name, moved.mix, moved.margin_table, moved.seed) == ("mix", "safety", "large", 7)
        assert (moved.status, moved.counts, moved.created_by_id) == (JobStatus.DONE, counts, researcher.pk)
        moved_source = ExternalSource.objects.get(pk=source.pk)
        assert (moved_source.name, moved_source.row_count) == ("hh", 1)
        moved_external = ExternalComparison.objects.get(pk=external.pk)
        assert (moved_external.source, moved_external.context) == (moved_source, context)
        assert moved_external.chosen == "Hello."
        assert list(moved_source.comparisons.all()) == [moved_external]
        assert HeldOutThreshold.objects.get(pk=threshold.pk).threshold == 0.25
        moved_pair = DatasetPair.objects.get(pk=pair.pk)
        assert (moved_pair.build, moved_pair.external, moved_pair.split, moved_pair.margin) == (
            moved,
            moved_external,
            Split.TRAIN,
            2.0,
        )
        assert list(moved.pairs.all()) == [moved_pair]
        assert list(moved.exports.all()) == [DatasetExport.objects.get(pk=export.pk)]
        # The reward-model side reaches the moved build through its foreign keys, both ways.
        assert TrainingRun.objects.get(pk=run.pk).dataset == moved
        assert list(moved.training_runs.values_list("pk", flat=True)) == [run.pk]
        assert RunEvaluation.objects.get(pk=evaluation.pk).dataset == moved
        assert ContentType.objects.get_for_model(DatasetBuild).pk == content_type.pk
        assert ContentType.objects.get_for_model(DatasetBuild).app_label == "preference_data"
        with pytest.raises(IntegrityError), transaction.atomic():  # unique_external_row came along
            ExternalComparison.objects.create(source=moved_source, row=0, context=context, chosen="a", rejected="b")
        with pytest.raises(IntegrityError), transaction.atomic():  # and so did dataset_pair_one_origin
            DatasetPair.objects.create(build=moved, split="train", component="safety", margin=0.0, sample_key=0.1)
        with pytest.raises(ProtectedError), transaction.atomic():  # a build a run trained on stays
            moved.delete()
    finally:
        migrate_to(latest)
        ContentType.objects.clear_cache()
