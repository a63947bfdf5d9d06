"""Attacks on issue 12's hardening: each test is a way in that was open, and stays closed."""

import pytest

from app.core.cards import mask_pans, mask_pans_in_text
from app.core.logging import mask_card_numbers

# A card number with what is written after it: its expiry date or security code.
CARD_THEN_MORE = [
    ("card 4111 1111 1111 1111 12/26 declined", "card 411111******1111 12/26 declined"),
    ("4111111111111111 123", "411111******1111 123"),
    ("pan=4111111111111111-12-26", "pan=411111******1111-12-26"),
    ("5500 0000 0000 0004 01/29", "550000******0004 01/29"),
    ("cvv 123 4111111111111111", "cvv 123 411111******1111"),
]


class TestCardNumberNextToOtherDigits:
    @pytest.mark.parametrize(("text", "masked"), CARD_THEN_MORE)
    def test_logs_mask_it(self, text: str, masked: str):
        assert mask_card_numbers(text) == masked

    @pytest.mark.parametrize(("text", "masked"), CARD_THEN_MORE)
    def test_stored_webhooks_mask_it(self, text: str, masked: str):
        assert mask_pans_in_text(text) == masked
        assert mask_pans({"note": text, "transactionId": 4012000098765439}) == {
            "note": masked,
            "transactionId": 4012000098765439,
        }

    def test_ids_and_plain_numbers_are_left_whole(self):
        for text in ("trace 4012000098765438", "order 1234567 2026-12-02 13:22", "10.00 USD"):
            assert mask_card_numbers(text) == text
            assert mask_pans_in_text(text) == text
