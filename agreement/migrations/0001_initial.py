"""AgreementReport and AnnotatorQuality move here from the annotation app, tables and all.

The tables were made by annotation's migrations 0002 and 0003 and keep their names (`db_table`), so
this migration changes Django's state only: annotation 0004 forgets the two models, this one
declares them exactly as they were (fields, foreign keys, constraint names). Nothing in the
database moves except the two content types, which are renamed to this app so that permissions and
admin history that point at them stay attached.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ("agreementreport", "annotatorquality")


def content_types_follow(source: str, target: str):
    def move(apps, schema_editor) -> None:
        content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
        for model in MODELS:
            # A fresh database has no content types yet (post_migrate makes them); one that already
            # has the target's keeps it.
            if not content_types.filter(app_label=target, model=model).exists():
                content_types.filter(app_label=source, model=model).update(app_label=target)

    return move


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('annotation', '0004_agreement_moves_to_its_own_app'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AgreementReport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('dispatched_at', models.DateTimeField(blank=True, editable=False, help_text='When its task was last sent to the queue.', null=True)),
                        ('dispatch_count', models.PositiveIntegerField(default=0, editable=False, help_text='Messages sent for it.')),
                        ('heartbeat_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('worker', models.CharField(blank=True, editable=False, help_text='host:pid of the process that ran it last.', max_length=200)),
                        ('scope', models.CharField(choices=[('batch', 'Batch'), ('batch_vendor', "One vendor's people in a batch"), ('filter', 'A filter over batches, focus, vendor and weeks')], max_length=20)),
                        ('filters', models.JSONField(blank=True, default=dict, help_text='The filter of a filter report, canonical form.')),
                        ('filter_key', models.CharField(blank=True, max_length=64)),
                        ('status', models.CharField(choices=[('pending', 'Queued'), ('ready', 'Ready'), ('failed', 'Failed')], default='pending', max_length=10)),
                        ('error', models.TextField(blank=True)),
                        ('metrics', models.JSONField(blank=True, default=dict)),
                        ('ratings_count', models.PositiveIntegerField(default=0, help_text='Ratings in scope when it was computed.')),
                        ('computed_at', models.DateTimeField(blank=True, null=True)),
                        ('seconds', models.FloatField(blank=True, help_text='How long the computation took.', null=True)),
                        ('requested_at', models.DateTimeField(auto_now_add=True)),
                        ('batch', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='agreement_reports', to='annotation.batch')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('vendor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.vendor')),
                    ],
                    options={
                        'db_table': 'annotation_agreementreport',
                        'ordering': ['-requested_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='AnnotatorQuality',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('n_ratings', models.PositiveIntegerField(help_text='Every rating in scope, gold and repeats included.')),
                        ('agreement', models.FloatField(help_text='Share matching the majority choice of the other raters.', null=True)),
                        ('agreement_low', models.FloatField(null=True)),
                        ('agreement_high', models.FloatField(null=True)),
                        ('agreement_n', models.PositiveIntegerField(default=0)),
                        ('gold_accuracy', models.FloatField(null=True)),
                        ('gold_low', models.FloatField(null=True)),
                        ('gold_high', models.FloatField(null=True)),
                        ('gold_n', models.PositiveIntegerField(default=0)),
                        ('left_share', models.FloatField(help_text='Share of ratings choosing the response shown on the left.', null=True)),
                        ('left_low', models.FloatField(null=True)),
                        ('left_high', models.FloatField(null=True)),
                        ('left_distance', models.FloatField(help_text='|left share - 0.5|.', null=True)),
                        ('position_significant', models.BooleanField(default=False)),
                        ('unsure_share', models.FloatField(help_text='Share of "negligibly better / unsure".', null=True)),
                        ('unsure_low', models.FloatField(null=True)),
                        ('unsure_high', models.FloatField(null=True)),
                        ('median_seconds', models.FloatField(null=True)),
                        ('ratings_per_hour', models.FloatField(help_text='3600 / median seconds per rating.', null=True)),
                        ('swap_consistency', models.FloatField(help_text='Share of repeats where the same response was chosen.', null=True)),
                        ('swap_low', models.FloatField(null=True)),
                        ('swap_high', models.FloatField(null=True)),
                        ('swap_n', models.PositiveIntegerField(default=0)),
                        ('ds_accuracy', models.FloatField(help_text='Dawid-Skene estimate of the share of correct choices.', null=True)),
                        ('flags', models.JSONField(blank=True, default=list)),
                        ('is_outlier', models.BooleanField(default=False)),
                        ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('report', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='annotators', to='agreement.agreementreport')),
                    ],
                    options={
                        'db_table': 'annotation_annotatorquality',
                        'ordering': ['report_id', 'annotator_id'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='agreementreport',
                    constraint=models.UniqueConstraint(condition=models.Q(('scope', 'batch')), fields=('batch',), name='one_report_per_batch'),
                ),
                migrations.AddConstraint(
                    model_name='agreementreport',
                    constraint=models.UniqueConstraint(condition=models.Q(('scope', 'batch_vendor')), fields=('batch', 'vendor'), name='one_report_per_batch_vendor'),
                ),
                migrations.AddConstraint(
                    model_name='agreementreport',
                    constraint=models.UniqueConstraint(condition=models.Q(('scope', 'filter')), fields=('filter_key',), name='one_report_per_filter'),
                ),
                migrations.AddConstraint(
                    model_name='annotatorquality',
                    constraint=models.UniqueConstraint(fields=('report', 'annotator'), name='one_quality_row_per_annotator'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_follow("annotation", "agreement"), content_types_follow("agreement", "annotation")
        ),
    ]
