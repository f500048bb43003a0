"""UPDATE ... RETURNING through the ORM: Django's update() answers a count, so code that needs the row it
changed reads it back in a second statement. `update_returning` does both in one round trip.

    claimed = update_returning(TaskRecord.objects.filter(pk=pk, status="queued"), status="running")
"""

from django.db.models.sql import UpdateQuery


def update_returning(queryset, **values) -> list:
    """Update the rows `queryset` selects as `.update(**values)` would (expressions allowed) and return them
    as model instances, as they are after the update."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    return list(queryset.model.objects.using(queryset.db).raw(f"{sql} RETURNING *", params))
