from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # built concurrently: writes to a large memory table go on meanwhile

    dependencies = [("memory", "0006_metadata_gin")]

    operations = [
        AddIndexConcurrently(
            model_name="memory",
            index=models.Index(
                condition=models.Q(("archived", False)),
                fields=["owner", "partition"],
                include=("expires_at", "agent_id", "namespace"),
                name="memory_live_slice",
            ),
        ),
    ]
