import logging
import os
import signal
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from core import log_formats, metrics_dir
from platform_site import embedded
from platform_site.supervisor import Supervisor, read_procfile


class Command(BaseCommand):
    help = (
        "Run the whole platform for development: embedded services, migrations, demo data, then web, "
        "Celery worker and Celery beat from the Procfile, each started again if it exits. Ctrl-C stops all of it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host, port, **options):
        if settings.PRODUCTION:
            raise CommandError("runplatform is for development; deploy with the Dockerfile and docker-compose.yml")
        _readable_logs()
        try:
            try:
                connection.ensure_connection()
            except OperationalError as exc:
                raise CommandError(f"cannot reach the database: {exc}".strip()) from None
            self.stdout.write("Applying migrations...")
            call_command("migrate", interactive=False, verbosity=0, skip_checks=False)
            self.stdout.write("Demo accounts (development only; kept in var/demo-credentials.txt):")
            call_command("demo_data")
            self._run_procfile(host, port)
        finally:
            stopping = embedded.started_here()
            if stopping:
                self.stdout.write(f"Stopping embedded {', '.join(sorted(stopping))}...")
            embedded.stop_started()

    def _run_procfile(self, host, port):
        bin_dir = Path(sys.executable).parent
        child_env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOST": host,
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            "LOG_FORMAT": os.environ["LOG_FORMAT"],
            # Children use the services started here instead of starting their own.
            "DATABASE_URL": os.environ.get("DATABASE_URL") or embedded.postgres_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            # Every process writes its metrics there; wiped here, once: a web process started again must not
            # wipe the files of the others (core/metrics_dir.py).
            metrics_dir.VARIABLE: str(settings.PROMETHEUS_MULTIPROC_DIR),
            metrics_dir.WIPE_VARIABLE: "false",
        }
        metrics_dir.wipe(settings.PROMETHEUS_MULTIPROC_DIR)
        base = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS("Switchboard is starting:")
            + f"\n  browser   {base}/\n  admin     {base}/admin/\n  API docs  {base}/api/docs/"
            + f"\n  API       {base}/api/v1/\n  health    {base}/healthz  {base}/readyz\n"
            + "A process that exits is started again. Press Ctrl-C to stop everything."
        )
        supervisor = Supervisor(
            read_procfile(settings.BASE_DIR / "Procfile"),
            env=child_env,
            cwd=settings.BASE_DIR,
            services=self._embedded_services(),
            out=self.stdout,
        )
        signal.signal(signal.SIGTERM, supervisor.stop)
        signal.signal(signal.SIGINT, supervisor.stop)
        supervisor.run()

    def _embedded_services(self) -> dict:
        """The embedded servers this run depends on, to be started again if they die."""
        services = {}
        if "DATABASE_URL" not in os.environ:
            services["PostgreSQL"] = (embedded.postgres_alive, embedded.ensure_postgres)
        if "REDIS_URL" not in os.environ:
            services["Redis"] = (embedded.redis_alive, embedded.ensure_redis)
        return services


def _readable_logs() -> None:
    """Logs for a person at a terminal, unless LOG_FORMAT says otherwise: text lines here and in every process
    started from here (JSON lines are for log shippers)."""
    os.environ.setdefault("LOG_FORMAT", "text")
    if os.environ["LOG_FORMAT"] == "text":
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:
                handler.setFormatter(log_formats.TextFormatter())
