"""Workflows from the command line: export and import definitions, start a run, reap lost steps.

manage.py workflows export --user alice research > research.json
manage.py workflows import --user alice research.json        (a new workflow, or a new version)
manage.py workflows run --user alice research --inputs '{"topic": "otters"}'
manage.py workflows reap [--every 5]                          (what the beat job does, once or in a loop)
"""

import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from workflows.engine.reaper import steps_reap
from workflows.selectors import workflow_usable_named
from workflows.services.runs import run_start
from workflows.services.workflows import DefinitionRejected, workflow_export, workflow_import


class Command(BaseCommand):
    help = "Export, import and run workflows; reap steps whose worker was lost."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        export = commands.add_parser("export", help="print a workflow's current version as JSON")
        export.add_argument("--user", required=True)
        export.add_argument("name")
        imported = commands.add_parser("import", help="import an export (a file, or - for standard input)")
        imported.add_argument("--user", required=True)
        imported.add_argument("file")
        started = commands.add_parser("run", help="start a run and print its id")
        started.add_argument("--user", required=True)
        started.add_argument("name")
        started.add_argument("--inputs", default="{}", help="the inputs, as a JSON object")
        reap = commands.add_parser("reap", help="queue again the steps whose lease ran out, wake the due ones")
        reap.add_argument("--every", type=float, default=0, help="repeat every so many seconds (0: once)")

    def handle(self, *args, command, **options):
        try:
            getattr(self, f"_{command}")(**options)
        except DefinitionRejected as rejected:
            problems = "\n".join(f"  line {p.line}, column {p.column}: {p.message}" for p in rejected.problems)
            raise CommandError(f"{rejected}\n{problems}") from rejected
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error

    def _user(self, username):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user

    def _workflow(self, user, name):
        workflow = workflow_usable_named(user=user, name=name)
        if workflow is None:
            raise CommandError(f"No workflow {name!r} that {user.username} may use.")
        return workflow

    def _export(self, *, user, name, **_):
        self.stdout.write(json.dumps(workflow_export(workflow=self._workflow(self._user(user), name)), indent=2))

    def _import(self, *, user, file, **_):
        text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"Not JSON: {error}") from error
        workflow = workflow_import(owner=self._user(user), document=document)
        self.stdout.write(f"Imported {workflow.name}: version {workflow.current_version.number}.")

    def _run(self, *, user, name, inputs, **_):
        owner = self._user(user)
        run, _ = run_start(workflow=self._workflow(owner, name), user=owner, inputs=json.loads(inputs))
        self.stdout.write(str(run.pk))

    def _reap(self, *, every, **_):
        while True:
            reaped = steps_reap()
            if reaped["requeued"] or reaped["woken"] or not every:
                self.stdout.write(f"Requeued {reaped['requeued']}, woke {reaped['woken']}.")
            if not every:
                return
            time.sleep(every)
            close_old_connections()
