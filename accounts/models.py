from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The platform's user, custom from the first migration so identity can grow without a data migration."""

    class Meta(AbstractUser.Meta):
        db_table = "accounts_user"
