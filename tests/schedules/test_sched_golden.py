"""The stored `schedule` JSON and the `view()` output, byte for byte as before the split into modules.

golden_state.json was written by golden_scenarios.py from the code where the schedule state was a dict of
string keys; the same scripted histories must store and show exactly the same text now."""

from __future__ import annotations

import json

import pytest
from .golden_scenarios import GOLDEN, SCENARIOS, current_api

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_stored_json_and_view_are_unchanged(storage_env, name):
    assert SCENARIOS[name](current_api()) == EXPECTED[name]
