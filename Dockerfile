# Production image: gunicorn as a non-root user; static files collected at build time (whitenoise).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SWITCHBOARD_ENV=production

WORKDIR /app
RUN useradd --create-home --uid 10001 switchboard

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Settings need values to import; these are build-time placeholders, never used at run time.
RUN SECRET_KEY=build-only ALLOWED_HOSTS=localhost FIELD_ENCRYPTION_KEYS=build-only \
    DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput
# Each process's metrics (core/metrics_dir.py), written by the non-root user; wiped by gunicorn as it starts.
RUN mkdir -p /app/var/metrics && chown switchboard:switchboard /app/var/metrics

USER switchboard
EXPOSE 8000
# The whole site on one ASGI server: gunicorn manages uvicorn workers (platform_site/serving.py), each holding
# many calls at once; one per core.
CMD ["gunicorn", "platform_site.asgi:application", "-k", "platform_site.serving.Worker", "--bind", "0.0.0.0:8000", "--workers", "2", "--timeout", "60"]
