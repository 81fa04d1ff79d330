"""AgreementReport and AnnotatorQuality leave this app for `agreement` (its migration 0001_initial).

State only: their tables stay where annotation's migrations 0002 and 0003 made them, under the same
names, and the agreement app's models point at them with `db_table`.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0003_background_work'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='AnnotatorQuality'),
                migrations.DeleteModel(name='AgreementReport'),
            ],
            database_operations=[],
        ),
    ]
