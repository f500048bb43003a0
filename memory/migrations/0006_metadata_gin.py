from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False  # built concurrently: writes to a large memory table go on meanwhile

    dependencies = [("memory", "0005_memory_namespaces")]

    operations = [
        AddIndexConcurrently(
            model_name="memory",
            index=GinIndex(fields=["metadata"], name="memory_metadata_gin", opclasses=["jsonb_path_ops"]),
        ),
    ]
