"""Policies: block, redact and flag; placeholders; verdicts without the matched text; overlaps; blocked terms."""

import pytest

from accounts.models import KEY_ID_LENGTH, new_key_id, new_key_secret
from agents.guards import DETECTORS, Policy, apply, placeholder, scan

EMAIL, CARD, IBAN = "jane.doe@example.org", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"
KEY = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"
MESSAGE = f"Hi, I'm Jane ({EMAIL}). Card {CARD}, IBAN {IBAN}. My token is {KEY}, thanks!"
REDACT_ALL = Policy(
    actions={family: "redact" for family in ("email", "phone", "card", "iban", "ip", "national_id", "secret")}
)


def test_redaction_replaces_each_finding_by_its_placeholder_and_keeps_the_rest_of_the_text():
    outcome = apply(REDACT_ALL, MESSAGE)

    assert outcome.text == "Hi, I'm Jane ([EMAIL]). Card [CARD], IBAN [IBAN]. My token is [SECRET], thanks!"
    assert not outcome.blocked


def test_redaction_leaves_no_finding_behind():
    outcome = apply(REDACT_ALL, MESSAGE)

    assert scan(outcome.text, ["email", "card", "iban", "secret"]) == []


def test_verdicts_name_the_detector_action_and_count_never_the_matched_text():
    outcome = apply(REDACT_ALL, f"{MESSAGE} Also {EMAIL}.")

    assert outcome.verdicts == [
        ("card", "redact", 1),
        ("email", "redact", 2),
        ("iban", "redact", 1),
        ("secret.github_token", "redact", 1),
    ]
    assert not any(secret in repr(outcome.verdicts) + repr(outcome.findings) for secret in (EMAIL, CARD, KEY))


def test_a_block_marks_the_outcome_blocked_and_still_hides_the_finding():
    outcome = apply(Policy(actions={"secret": "block", "email": "flag"}), MESSAGE)

    assert outcome.blocked
    assert KEY not in outcome.text
    assert EMAIL in outcome.text  # flagged: counted, left in place
    assert ("email", "flag", 1) in outcome.verdicts


def test_a_detector_entry_beats_its_family_entry():
    policy = Policy(actions={"secret": "block", "secret.github_token": "flag"})

    outcome = apply(policy, MESSAGE)

    assert not outcome.blocked
    assert outcome.verdicts == [("secret.github_token", "flag", 1)]


def test_a_policy_runs_only_the_detectors_it_names():
    outcome = apply(Policy(actions={"iban": "redact"}), MESSAGE)

    assert outcome.verdicts == [("iban", "redact", 1)]
    assert EMAIL in outcome.text and CARD in outcome.text


def test_every_family_has_one_placeholder_style():
    assert placeholder("email") == "[EMAIL]"
    assert placeholder("secret.aws_access_key") == "[SECRET]"
    assert placeholder("national_id.fr_nir") == "[NATIONAL_ID]"
    assert placeholder("blocked_term") == "[BLOCKED_TERM]"
    assert {placeholder(name) for name in DETECTORS} == {
        "[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]", "[NATIONAL_ID]", "[SECRET]", "[INJECTION]"
    }  # fmt: skip


def test_an_unknown_detector_or_action_is_refused_with_a_message_that_names_it():
    with pytest.raises(ValueError, match="'emial'"):
        Policy(actions={"emial": "redact"})
    with pytest.raises(ValueError, match="'hide'"):
        Policy.from_dict({"actions": {"email": "hide"}})
    with pytest.raises(ValueError):
        Policy.from_dict({"actions": {}, "blocked_terms": "acme"})


def test_a_policy_survives_its_stored_form():
    policy = Policy.from_dict({"actions": {"card": "block"}, "blocked_terms": ["acme"]})

    assert Policy.from_dict(policy.to_dict()) == policy


# --- overlaps ----------------------------------------------------------------------------------------------------


def test_overlapping_findings_keep_the_longest():
    token = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )

    found = scan(f"Authorization: Bearer {token}")

    assert [(f.detector, f.end - f.start) for f in found] == [("secret.jwt", len(token))]


def test_at_equal_length_the_more_specific_detector_wins():
    # Eleven digits written 2-3-3-3 are a valid Steuer-ID and could be read as a phone number.
    found = scan("Steuer-ID: 86 095 742 719")

    assert [f.detector for f in found] == ["national_id.de_steuer_id"]


def test_a_finding_that_loses_an_overlap_is_still_hidden_when_its_policy_hides_it():
    policy = Policy(actions={"email": "redact"}, blocked_terms=("acme",))

    outcome = apply(policy, "Write to sales@acme.com today.")

    assert outcome.blocked  # the stronger action wins the overlap
    assert outcome.text == "Write to [BLOCKED_TERM] today."  # and no piece of the address is left


# --- blocked terms -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Status of PROJECT NIGHTINGALE?", "status of project  nightingale", "Die ZÜRICH LABS", "die zurich labs",
     "Une CRÈME BRÛLÉE", "acme-corp", "Ask Acme."],
)  # fmt: skip
def test_blocked_terms_match_whole_words_whatever_the_case_accents_and_spaces(text):
    policy = Policy(blocked_terms=("Project Nightingale", "Zürich Labs", "creme brulee", "ACME"))

    assert apply(policy, text).blocked


@pytest.mark.parametrize("text", ["The acmes of the Alps", "pacman", "Nightingale alone", "Zürich and its labs"])
def test_blocked_terms_do_not_match_inside_other_words(text):
    policy = Policy(blocked_terms=("Project Nightingale", "Zürich Labs", "acme"))

    assert not apply(policy, text).blocked


def test_thousands_of_blocked_terms_are_matched_in_one_pass():
    terms = [f"codename{n:04d}" for n in range(5000)] + ["Ünïcode Term"]
    policy = Policy(actions={"blocked_term": "redact"}, blocked_terms=tuple(terms))

    outcome = apply(policy, "see CODENAME4999 and unicode term, not codename49990")

    assert outcome.text == "see [BLOCKED_TERM] and [BLOCKED_TERM], not codename49990"


# --- this platform's keys --------------------------------------------------------------------------------------------


def test_this_platforms_api_keys_are_found_in_the_format_accounts_issues():
    key = f"sb_{new_key_id()}_{new_key_secret()}"
    assert len(key.split("_")[1]) == KEY_ID_LENGTH

    assert [f.detector for f in scan(f"my key is {key}.")] == ["secret.switchboard_key"]
