"""A database made before agreement became its own app migrates forward with its reports.

AgreementReport and AnnotatorQuality moved from `annotation` to `agreement` with their tables
(agreement/migrations/0001_initial.py): the rows the previous release wrote must still be there,
read through the new models, with their constraints, and their content types must follow them.
"""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from agreement.models import AgreementReport, AnnotatorQuality, ReportScope, ReportStatus
from tests.helpers import migrate_to

# The previous release: annotation's last migration before the move, and no agreement app.
BEFORE_THE_MOVE = [("annotation", "0003_background_work"), ("agreement", None)]
STATE_BEFORE_THE_MOVE = [("annotation", "0003_background_work"), ("contenttypes", "0002_remove_content_type_name")]


@pytest.mark.django_db(transaction=True)
def test_reports_written_before_the_move_are_read_through_the_agreement_app():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        executor = migrate_to(BEFORE_THE_MOVE)
        old = executor.loader.project_state(STATE_BEFORE_THE_MOVE).apps
        with pytest.raises(LookupError):
            old.get_app_config("agreement")
        Vendor = old.get_model("accounts", "Vendor")
        User = old.get_model("accounts", "User")
        Batch = old.get_model("annotation", "Batch")
        OldReport = old.get_model("annotation", "AgreementReport")
        OldQuality = old.get_model("annotation", "AnnotatorQuality")
        OldContentType = old.get_model("contenttypes", "ContentType")

        vendor = Vendor.objects.create(name="Acme")
        annotator = User.objects.create(username="ann", role="annotator", vendor=vendor)
        batch = Batch.objects.create(name="week 1", week="2026-11-30")
        metrics = {"scale": {"gwet_ac2": {"coefficient": 0.48, "standard_error": 0.03}}}
        report = OldReport.objects.create(
            scope="batch", batch=batch, status="ready", metrics=metrics, ratings_count=9, dispatch_count=2
        )
        vendor_report = OldReport.objects.create(scope="batch_vendor", batch=batch, vendor=vendor, status="ready")
        OldQuality.objects.create(
            report=report, annotator=annotator, n_ratings=9, agreement=0.75, flags=["position_bias"], is_outlier=True
        )
        # The previous release's content type of the report (post_migrate made it there).
        OldContentType.objects.filter(app_label="agreement", model="agreementreport").delete()
        content_type, _ = OldContentType.objects.get_or_create(app_label="annotation", model="agreementreport")

        migrate_to(latest)
        ContentType.objects.clear_cache()

        moved = AgreementReport.objects.get(pk=report.pk)
        assert (moved.scope, moved.batch_id, moved.status) == (ReportScope.BATCH, batch.pk, ReportStatus.READY)
        assert (moved.metrics, moved.ratings_count, moved.dispatch_count) == (metrics, 9, 2)
        assert AgreementReport.objects.get(pk=vendor_report.pk).vendor_id == vendor.pk
        quality = AnnotatorQuality.objects.get(report=moved)
        assert (quality.annotator_id, quality.n_ratings, quality.agreement) == (annotator.pk, 9, 0.75)
        assert quality.flags == ["position_bias"] and quality.is_outlier
        assert list(moved.annotators.all()) == [quality]
        assert list(batch_reports(batch.pk)) == [moved.pk]
        assert ContentType.objects.get_for_model(AgreementReport).pk == content_type.pk
        with pytest.raises(IntegrityError), transaction.atomic():  # one_report_per_batch came along
            AgreementReport.objects.create(scope=ReportScope.BATCH, batch_id=batch.pk)
    finally:
        migrate_to(latest)
        ContentType.objects.clear_cache()


def batch_reports(batch_id: int):
    """The reverse accessor on annotation's Batch reaches the moved model."""
    from annotation.models import Batch

    return Batch.objects.get(pk=batch_id).agreement_reports.filter(scope=ReportScope.BATCH).values_list("pk", flat=True)
