"""The card-number masking rules: the fast paths agree with the rules as first written
(`tests/fixtures/masking_reference.py`) on every input, ids and other scripts' digits included."""

import re
import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import cards
from app.core.cards import id_values, mask_pans, mask_pans_in_text
from tests.fixtures import masking_reference as reference
from tests.fixtures.json_values import CARDS, TEXT, json_values

EXAMPLES = settings(max_examples=400, deadline=None)


class TestPatterns:
    @EXAMPLES
    @given(text=TEXT)
    def test_they_match_what_the_reference_patterns_match(self, text: str):
        for fast, slow in [
            (cards._PAN_CANDIDATE, reference._PAN_CANDIDATE),
            (cards._UUID, reference._UUID),
        ]:
            spans = [found.span() for found in fast.finditer(text)]
            assert spans == [found.span() for found in slow.finditer(text)]

    @pytest.mark.parametrize(
        ("spelled", "folded"), [(cards._ALNUM, "[0-9A-Za-z]"), (cards._HEX, "[0-9a-f]")]
    )
    def test_the_uuid_classes_hold_every_character_ignorecase_matched(self, spelled, folded):
        # Every code point: the proof that the classes spelled out match what IGNORECASE did.
        every = "".join(map(chr, range(sys.maxunicode + 1)))
        assert re.findall(spelled, every) == re.findall(folded, every, re.IGNORECASE)


class TestMaskPansInText:
    @EXAMPLES
    @given(text=TEXT, keep=st.sets(st.sampled_from([*CARDS, "4111111111111111"[:13]])))
    def test_agrees_with_the_reference(self, text: str, keep: set[str]):
        assert mask_pans_in_text(text, keep) == reference.mask_pans_in_text(text, keep)

    @pytest.mark.parametrize(
        "text",
        [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "pan 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            "٤١١١١١١١١١١١١١١١",  # Arabic-Indic digits: `\d` matches them, so must the fast path
            "x4111111111111111x",
        ],
    )
    def test_a_card_number_in_any_shape_is_still_found(self, text: str):
        assert mask_pans_in_text(text) != text
        assert mask_pans_in_text(text) == reference.mask_pans_in_text(text)

    def test_digit_runs_cut_by_other_characters_are_left_as_they_are(self):
        text = "2025-03-14T09:26:53.000000000 0c5c7fd0-a6a3-4450-a513-270e269e0d37 734519802341"
        assert mask_pans_in_text(text) == text


class TestMaskPans:
    @EXAMPLES
    @given(value=json_values())
    def test_agrees_with_the_reference(self, value: Any):
        assert mask_pans(value) == reference.mask_pans(value)

    @pytest.mark.parametrize("number", ["1e5000", "-1e5000", "4111111111111111e4000"])
    def test_a_number_too_long_for_a_card_is_kept_not_a_500(self, number: str):
        # Written out as an integer, past Python's 4,300 digits, it raised ValueError.
        value = {"amount": Decimal(number)}
        assert mask_pans(value) == value

    def test_a_card_number_as_a_whole_decimal_is_masked(self):
        value = {
            "note": Decimal("4111111111111111.00"),
            "longest": Decimal("6.217000000000000004E+18"),
            "big": Decimal("1E+18"),
        }
        assert mask_pans(value) == {
            "note": "411111******1111",
            "longest": "621700*********0004",
            "big": Decimal("1E+18"),
        }


class TestIdValues:
    @EXAMPLES
    @given(value=json_values())
    def test_agrees_with_the_reference(self, value: Any):
        assert id_values(value) == reference.id_values(value)

    def test_id_keys_are_read_as_the_rule_says(self):
        value = {
            "id": 1,
            "transactionId": "4111111111111111",
            "netvalveID": 3,
            "order_id": 4,
            "idx": 5,  # not an id key
            "xId\n": 6,  # `$` matches before a final newline
            "xId\n\n": 7,
            "nested": [{"orderId": True}, {"orderId": 8}],
        }
        assert id_values(value) == {"1", "4111111111111111", "3", "4", "6", "8"}
