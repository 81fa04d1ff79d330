"""The comparison datasets move here from the rewardmodel app, tables and all.

ExternalSource, ExternalComparison, DatasetBuild, HeldOutThreshold, DatasetPair and DatasetExport were
made by rewardmodel's migrations 0001 and 0003 and keep their tables (`db_table`), so this migration
changes Django's state only: it declares the six models exactly as they were (fields, foreign keys,
index and constraint names); rewardmodel 0005 then points its training runs and evaluations at them
and forgets its own copies. Nothing in the database moves except the six content types, which are
renamed to this app so that permissions and admin history that point at them stay attached.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ("externalsource", "externalcomparison", "datasetbuild", "heldoutthreshold", "datasetpair", "datasetexport")


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
        ('annotation', '0004_agreement_moves_to_its_own_app'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('rewardmodel', '0004_best_of_k_previews'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DatasetBuild',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('dispatched_at', models.DateTimeField(blank=True, editable=False, help_text='When its task was last sent to the queue.', null=True)),
                        ('dispatch_count', models.PositiveIntegerField(default=0, editable=False, help_text='Messages sent for it.')),
                        ('heartbeat_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('worker', models.CharField(blank=True, editable=False, help_text='host:pid of the process that ran it last.', max_length=200)),
                        ('name', models.CharField(max_length=200)),
                        ('selection', models.JSONField(default=dict, help_text='Batches, filters and sources, resolved when created.')),
                        ('mix', models.CharField(choices=[('none', 'The selection as it is'), ('helpfulness', 'Helpfulness mix (+ equal amount of safety and open-source data)'), ('safety', 'Safety mix (safety + harmless-style data, 90/10 with helpfulness)')], default='none', max_length=20)),
                        ('margin_table', models.CharField(choices=[('none', 'No margin'), ('small', 'Small (1, 2/3, 1/3, 0)'), ('large', 'Large (3, 2, 1, 0)')], default='small', max_length=10)),
                        ('seed', models.BigIntegerField(default=0)),
                        ('held_out_mode', models.CharField(choices=[('count', 'A fixed number per batch (capped at a fraction)'), ('fraction', 'A fraction of each batch')], default='count', max_length=10)),
                        ('test_count', models.PositiveIntegerField(default=1000)),
                        ('test_fraction', models.FloatField(default=0.1, help_text='Fraction mode: the share; count mode: the cap.')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('progress_done', models.PositiveIntegerField(default=0)),
                        ('progress_total', models.PositiveIntegerField(default=0)),
                        ('counts', models.JSONField(blank=True, default=dict)),
                        ('exclusions', models.JSONField(blank=True, default=dict)),
                        ('manifest', models.JSONField(blank=True, default=dict)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'rewardmodel_datasetbuild',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='DatasetExport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('dispatched_at', models.DateTimeField(blank=True, editable=False, help_text='When its task was last sent to the queue.', null=True)),
                        ('dispatch_count', models.PositiveIntegerField(default=0, editable=False, help_text='Messages sent for it.')),
                        ('heartbeat_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('worker', models.CharField(blank=True, editable=False, help_text='host:pid of the process that ran it last.', max_length=200)),
                        ('format', models.CharField(choices=[('trl', 'TRL preference (conversational, with margin)'), ('hh_rlhf', 'HH-RLHF transcripts'), ('ratings', 'Raw ratings (one row per annotator rating)')], default='trl', max_length=10)),
                        ('file_type', models.CharField(choices=[('jsonl', 'JSON Lines'), ('parquet', 'Parquet')], default='jsonl', max_length=10)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('rows_done', models.PositiveIntegerField(default=0)),
                        ('rows_total', models.PositiveIntegerField(default=0)),
                        ('files', models.JSONField(blank=True, default=list, help_text='[{name, split, rows, bytes, sha256}]')),
                        ('content_hash', models.CharField(blank=True, max_length=64)),
                        ('manifest', models.JSONField(blank=True, default=dict)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('build', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='preference_data.datasetbuild')),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'rewardmodel_datasetexport',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ExternalSource',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200, unique=True)),
                        ('focus', models.CharField(choices=[('helpfulness', 'Helpfulness'), ('safety', 'Safety')], help_text='Helpfulness (helpful-style data) or safety (harmless-style data): where mixes put it.', max_length=20)),
                        ('format', models.CharField(choices=[('hh_rlhf', 'Anthropic HH-RLHF transcripts'), ('trl', 'TRL preference (prompt / chosen / rejected)')], max_length=20)),
                        ('file_type', models.CharField(choices=[('jsonl', 'JSON Lines'), ('parquet', 'Parquet')], max_length=10)),
                        ('filename', models.CharField(blank=True, max_length=300)),
                        ('sha256', models.CharField(help_text='Of the imported file, to cite it.', max_length=64)),
                        ('row_count', models.PositiveIntegerField(default=0)),
                        ('description', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'rewardmodel_externalsource',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='ExternalComparison',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('row', models.PositiveIntegerField(help_text='Line (JSONL) or row (Parquet) in the imported file.')),
                        ('context', models.JSONField(help_text='Messages before the responses, ending with the user turn.')),
                        ('chosen', models.TextField()),
                        ('rejected', models.TextField()),
                        ('strength', models.CharField(blank=True, help_text='Empty when the file gave none (margin 0).', max_length=30)),
                        ('safety_label', models.CharField(blank=True, max_length=30)),
                        ('source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='comparisons', to='preference_data.externalsource')),
                    ],
                    options={
                        'db_table': 'rewardmodel_externalcomparison',
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='HeldOutThreshold',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('seed', models.BigIntegerField()),
                        ('test_count', models.PositiveIntegerField()),
                        ('max_fraction', models.FloatField()),
                        ('threshold', models.FloatField()),
                        ('comparisons_seen', models.PositiveIntegerField(help_text='Comparisons in the batch when it was fixed.')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.batch')),
                    ],
                    options={
                        'db_table': 'rewardmodel_heldoutthreshold',
                    },
                ),
                migrations.CreateModel(
                    name='DatasetPair',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('split', models.CharField(choices=[('train', 'Train'), ('test', 'Test (held out)')], max_length=5)),
                        ('component', models.CharField(choices=[('helpfulness', 'Preflab helpfulness'), ('safety', 'Preflab safety'), ('external_helpfulness', 'Imported helpful-style'), ('external_safety', 'Imported harmless-style')], max_length=24)),
                        ('strength', models.CharField(blank=True, max_length=30)),
                        ('margin', models.FloatField()),
                        ('safety_label', models.CharField(blank=True, max_length=30)),
                        ('agreement', models.FloatField(blank=True, help_text='Share of raters who chose the majority response.', null=True)),
                        ('n_ratings', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('sample_key', models.FloatField(help_text='unit_hash(seed, mix key): mixes keep the smallest.')),
                        ('build', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='pairs', to='preference_data.datasetbuild')),
                        ('chosen_response', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.response')),
                        ('comparison', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.comparison')),
                        ('rejected_response', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.response')),
                        ('external', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='preference_data.externalcomparison')),
                    ],
                    options={
                        'db_table': 'rewardmodel_datasetpair',
                        'ordering': ['id'],
                        'indexes': [models.Index(fields=['build', 'id'], name='dataset_pair_by_build')],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('comparison__isnull', False), ('external__isnull', True)), models.Q(('comparison__isnull', True), ('external__isnull', False)), _connector='OR'), name='dataset_pair_one_origin')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='externalcomparison',
                    constraint=models.UniqueConstraint(fields=('source', 'row'), name='unique_external_row'),
                ),
                migrations.AddConstraint(
                    model_name='heldoutthreshold',
                    constraint=models.UniqueConstraint(fields=('batch', 'seed', 'test_count', 'max_fraction'), name='unique_held_out_threshold'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_follow("rewardmodel", "preference_data"), content_types_follow("preference_data", "rewardmodel")
        ),
    ]
