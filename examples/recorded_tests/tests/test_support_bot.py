"""The support bot's tests run against recorded model answers (tests/recordings/).

``pytestmark`` opts the whole module in. Locally the default mode is ``record``: new calls reach
the model once and are written next to this file; commit them. In CI (``CI=true``) the default
is ``replay``: answers come from the files, the model is never called, and a call with no
recording fails the test with the request and the command that records it.
"""

from __future__ import annotations

import pytest
import support_bot

pytestmark = pytest.mark.llm_memo


def test_a_double_charge_is_a_billing_ticket():
    assert support_bot.triage("I was charged twice this month, please refund me") == {
        "category": "billing",
        "urgent": False,
    }


def test_an_outage_is_urgent():
    assert support_bot.triage("Your site is down for all of our users")["urgent"] is True


def test_the_reply_speaks_to_the_category(llm_recording):
    reply = support_bot.draft_reply("I was charged twice this month, please refund me")
    assert "billing" in reply
    # Two model calls (triage, then the reply); the triage answer is shared with the first
    # test, so when the whole module runs it is a hit here.
    assert llm_recording.hits + llm_recording.misses == 2


def test_replay_never_calls_the_model(llm_recording):
    support_bot.triage("I can't sign in, my account is locked")
    if llm_recording.mode.value == "replay":
        assert support_bot.MODEL.calls == 0
