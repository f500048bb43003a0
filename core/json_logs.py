"""The JSON log line format, shared by Django's LOGGING and gunicorn's own logger."""

JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
    "rename_fields": {"asctime": "timestamp", "levelname": "level", "name": "logger", "process": "pid"},
    "datefmt": "%Y-%m-%dT%H:%M:%S%z",
}
