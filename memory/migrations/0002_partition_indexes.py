from django.db import migrations

from memory.indexes import create_partition_indexes


def create(apps, schema_editor):
    create_partition_indexes(schema_editor.execute)


def drop(apps, schema_editor):
    schema_editor.execute(
        "DO $$ DECLARE name text; BEGIN FOR name IN SELECT indexname FROM pg_indexes "
        "WHERE tablename = 'memory_memory' AND indexname LIKE 'memory_hnsw_p%' LOOP "
        "EXECUTE 'DROP INDEX ' || quote_ident(name); END LOOP; END $$"
    )


class Migration(migrations.Migration):
    dependencies = [("memory", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
