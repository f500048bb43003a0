"""Reading /metrics in the tests: the samples of its text, by name and labels."""

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(base_url: str, token: str | None = None) -> tuple[int, str]:
    """(status, body) of GET /metrics on a live server."""
    request = urllib.request.Request(f"{base_url}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> list[tuple[str, dict, float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    return sum(
        sample_value
        for sample_name, sample_labels, sample_value in samples(text)
        if sample_name == name and all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


def series(text: str) -> int:
    """How many series (sample lines) the text has."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))
