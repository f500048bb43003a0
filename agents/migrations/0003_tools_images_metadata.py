import django.db.models.deletion
from django.db import migrations, models

import agents.models


class Migration(migrations.Migration):
    dependencies = [("agents", "0002_agent_type_limits")]

    operations = [
        migrations.AddField(
            model_name="languagemodel",
            name="accepts_images",
            field=models.BooleanField(
                default=False,
                help_text="Whether the model takes images in messages; requests with images are refused if not.",
            ),
        ),
        migrations.AddField(
            model_name="agenttype",
            name="cache_tool_calls",
            field=models.BooleanField(
                default=False,
                help_text="Cache answers that call tools too (a cached tool call is made again by the agent that gets it).",
            ),
        ),
        migrations.AddField(
            model_name="agentrun",
            name="tool_calls",
            field=models.JSONField(blank=True, default=list, help_text="The tools the answer called, as OpenAI writes them."),
        ),
        migrations.AddField(
            model_name="agentrun",
            name="finish_reason",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.CreateModel(
            name="ExposedModel",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(
                        help_text="What clients send as `model`.",
                        max_length=90,
                        unique=True,
                        validators=[agents.models._exposed_name],
                    ),
                ),
                (
                    "roles",
                    models.JSONField(blank=True, default=list, help_text='Roles that may call it, e.g. ["member"]; [] for all.'),
                ),
                (
                    "agent",
                    models.OneToOneField(
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="exposure",
                        to="agents.agent",
                    ),
                ),
                (
                    "agent_type",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="agents.agenttype"
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(
                        blank=True,
                        help_text="Empty: the type's.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="agents.languagemodel",
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddField(
            model_name="agentrun",
            name="metadata",
            field=models.JSONField(blank=True, default=dict, help_text="What the request set in its `metadata`."),
        ),
    ]
