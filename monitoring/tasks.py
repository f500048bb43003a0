from celery import shared_task

from monitoring import services

EMAIL_RETRIES = 5


@shared_task(name="monitoring.evaluate")
def alerts_evaluate_task() -> dict | None:
    """Beat job: one round of alert evaluation (a round already running elsewhere makes this one a no-op)."""
    done = services.alerts_evaluate()
    return done.as_dict() if done else None


@shared_task(name="monitoring.send_email", bind=True, acks_late=True, max_retries=EMAIL_RETRIES)
def alert_email_task(self, notification_id: int) -> str:
    """Send one alert e-mail; a refusing mail server is tried again after 30 s, 1, 2, 4 and 8 min."""
    last_attempt = self.request.retries >= EMAIL_RETRIES
    try:
        return services.alert_email_send(notification_id=notification_id, last_attempt=last_attempt).status
    except services.EmailFailed as error:
        if last_attempt:
            return "failed"
        raise self.retry(countdown=30 * 2**self.request.retries) from error
