from django.db import migrations


class Migration(migrations.Migration):
    """pgvector is required (memory embeddings); platform_site.checks explains a missing one before this runs."""

    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS vector", reverse_sql=migrations.RunSQL.noop),
    ]
