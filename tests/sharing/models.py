from django.conf import settings
from django.db import models


class Notebook(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]
        permissions = [("use_notebook", "Can use notebook")]
