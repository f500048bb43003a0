"""The kernel every app may import and that imports no app.

exceptions   the domain exceptions services raise (conflict, refused, rate limited, unavailable, upstream)
api_errors   the one DRF exception handler that maps them, and the documented error body
pagination   page sizes and the newest-first cursor
accepted     long operations: 202 Accepted with a Location, and the Idempotency-Key header
paths        path ids that are not ids: 404
correlation  request ids in logs and Celery tasks;  log_formats  the log line formats (JSON, text)
encryption   secrets kept encrypted;  schedules  periodic jobs registered from migrations
metrics      every Prometheus metric and its bounded labels;  metrics_dir  where each process writes them
"""
