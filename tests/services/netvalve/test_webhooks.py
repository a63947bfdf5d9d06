"""Webhook intake's pure steps (parsing, the jsonb check, masking the raw body, the stored
payload) agree with the rules as first written (`tests/fixtures/masking_reference.py`)."""

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cards import id_values
from app.services.netvalve.webhooks import MAX_DEPTH, _json_safe, _masked_raw, _unstorable, parse
from tests.fixtures import masking_reference as reference
from tests.fixtures.json_values import TEXT, json_values

EXAMPLES = settings(max_examples=400, deadline=None)


def nested(depth: int, leaf: Any) -> Any:
    for index in range(depth):
        leaf = [leaf] if index % 2 else {"k": leaf}
    return leaf


class TestUnstorable:
    @EXAMPLES
    @given(value=json_values())
    def test_agrees_with_the_reference(self, value: Any):
        assert _unstorable(value) == reference.unstorable(value)

    @pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
    @pytest.mark.parametrize("leaf", ["text", "nul\x00", "\ud800", 1, {}, [], None])
    def test_the_depth_limit_and_the_first_reason_agree(self, depth: int, leaf: Any):
        value = nested(depth, leaf)
        assert _unstorable(value) == reference.unstorable(value)
        keyed = {"\x00key": nested(depth, leaf), "\udfff": "x"}
        assert _unstorable(keyed) == reference.unstorable(keyed)


class TestParse:
    @EXAMPLES
    @given(data=json_values())
    def test_a_delivery_parses_as_the_reference_would_check_it(self, data: Any):
        body = {"eventName": "PURCHASED", "data": {"x": data}}
        raw = json.dumps(body, default=str).encode("utf-8", errors="surrogatepass")
        parsed = parse(raw)
        if isinstance(parsed, str):
            assert parsed == reference.unstorable(json.loads(raw, parse_float=Decimal)["data"])
        else:
            assert reference.unstorable(parsed.data) is None


class TestStoredForms:
    @EXAMPLES
    @given(data=json_values())
    def test_the_payload_is_what_a_json_round_trip_gives(self, data: Any):
        if reference.unstorable(data) is not None:
            return  # refused before a payload is made
        value = {"eventName": "PURCHASED", "data": reference.mask_pans(data)}
        assert _json_safe(value) == reference.json_safe(value)

    @EXAMPLES
    @given(text=TEXT, data=json_values())
    def test_the_raw_body_is_masked_as_the_reference_masks_it(self, text: str, data: Any):
        raw = text.encode("utf-8", errors="surrogatepass") + b"\xff\xfe not UTF-8"
        keep = id_values(data)
        assert _masked_raw(raw, keep) == reference.masked_raw(raw, keep)

    @given(st.sampled_from([b'{"amount": 44.00}', b'{"a": [1.5e3, {"b": -0.0}]}']))
    def test_decimals_are_stored_as_their_text(self, raw: bytes):
        value = json.loads(raw, parse_float=Decimal)
        assert _json_safe(value) == json.loads(json.dumps(value, default=str))
