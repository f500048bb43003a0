"""Budgets are charged what providers really used, even past the reservation: the counters agree with the
ledger, and once a budget is overrun no further call is admitted."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.admission import NANO, QuotaExceeded, quota_settle
from tests.agents.conftest import ask, read_stream
from tests.conftest import api_client
from tests.quotas.helpers import admit, counter


@pytest.mark.django_db
def test_usage_past_the_reservation_is_charged_in_full_and_the_next_request_refused(alice, caplog):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1000)
    reservation = admit(alice, tokens=900)

    quota_settle(reservation=reservation, tokens=3000, cost=Decimal(0))

    assert counter("budget", alice, "tokens_per_day") == 3000
    assert "usage above its reservation" in caplog.text
    with pytest.raises(QuotaExceeded):
        admit(alice, tokens=1)


@pytest.mark.django_db
def test_a_provider_that_ignores_max_tokens_is_charged_what_it_spent_and_the_ledger_agrees(alice, agent, fake_llm):
    # Given budgets of 150 tokens and $0.001 a day, and an agent allowed 5 output tokens whose provider
    # writes 200 words anyway
    agent.max_tokens = 5
    agent.save()
    QuotaPolicy.objects.create(name="budget", tokens_per_day=150, cost_per_day=Decimal("0.001"))
    fake_llm.reply = " ".join(["word"] * 200)
    client = api_client(alice)

    first = ask(client, agent, "tell me everything")  # reserved: 18 bytes of prompt + 5 tokens
    second = ask(client, agent, "and again")

    assert first.status_code == 200 and first.json()["output_tokens"] == 200
    assert second.status_code == 429, "the overrun was settled: nothing more is admitted"
    ledger = UsageRecord.objects.filter(user=alice).aggregate(
        tokens=Sum("input_tokens") + Sum("output_tokens"), cost=Sum("cost")
    )
    assert counter("budget", alice, "tokens_per_day") == ledger["tokens"] > 150
    assert counter("budget", alice, "cost_per_day") == int(ledger["cost"] * NANO)
    assert ledger["cost"] > Decimal("0.001")


@pytest.mark.django_db
def test_a_cut_off_stream_is_charged_an_upper_bound_of_what_was_generated(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000)
    fake_llm.reply = "αβγ δεζ ηθι κλμ νξο πρσ"  # two bytes a letter
    fake_llm.cut_stream_after = 3
    client = api_client(alice)

    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": "greek"}], "stream": True},
        format="json",
    )
    read_stream(response)

    sent = "αβγ δεζ ηθι "
    ledger = UsageRecord.objects.get(user=alice)
    assert ledger.output_tokens == len(sent.encode()) == 21, "every byte sent, not 3 words"
    assert ledger.input_tokens >= len(b"Be brief.greek")
    assert counter("budget", alice, "tokens_per_day") == ledger.input_tokens + ledger.output_tokens
