"""The comparison datasets leave this app for `preference_data` (its migration 0001_initial).

State only: their tables stay where this app's migrations 0001 and 0003 made them, under the same
names, and preference_data's models point at them with `db_table`. Training runs and evaluations
now point at preference_data's DatasetBuild: the same table, so the foreign-key columns and their
constraints in the database are left as they are.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('preference_data', '0001_initial'),
        ('rewardmodel', '0004_best_of_k_previews'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='trainingrun',
                    name='dataset',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='training_runs', to='preference_data.datasetbuild'),
                ),
                migrations.AlterField(
                    model_name='runevaluation',
                    name='dataset',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='preference_data.datasetbuild'),
                ),
                migrations.DeleteModel(name='DatasetPair'),
                migrations.DeleteModel(name='DatasetExport'),
                migrations.DeleteModel(name='HeldOutThreshold'),
                migrations.DeleteModel(name='ExternalComparison'),
                migrations.DeleteModel(name='ExternalSource'),
                migrations.DeleteModel(name='DatasetBuild'),
            ],
            database_operations=[],
        ),
    ]
