"""`{% request_id %}`: the current request's correlation id, for pages rendered without a context (Django renders
500.html with none, so the handler cannot go wrong on the way to saying what went wrong)."""

from django import template

from core.correlation import current_request_id

register = template.Library()


@register.simple_tag
def request_id() -> str:
    return current_request_id() or ""
