from decimal import Decimal

import pytest

from app.core.money import (
    UnknownCurrency,
    exponent,
    from_minor_units,
    json_with_amounts,
    quantize,
    to_minor_units,
    wire_amount,
)


class TestExponents:
    @pytest.mark.parametrize(
        ("currency", "digits"), [("EUR", 2), ("usd", 2), ("JPY", 0), ("KWD", 3), ("PHP", 2)]
    )
    def test_iso_4217_exponents(self, currency, digits):
        assert exponent(currency) == digits

    def test_unknown_currency_is_refused(self):
        with pytest.raises(UnknownCurrency):
            exponent("XXQ")


class TestRounding:
    @pytest.mark.parametrize(
        ("amount", "currency", "expected"),
        [
            ("98.9009", "EUR", "98.90"),
            ("2.675", "EUR", "2.68"),
            ("2.665", "EUR", "2.67"),
            ("705.5", "JPY", "706"),
            ("1.2345", "KWD", "1.235"),
        ],
    )
    def test_quantize_is_half_up_to_the_minor_unit(self, amount, currency, expected):
        assert str(quantize(Decimal(amount), currency)) == expected

    @pytest.mark.parametrize(
        ("amount", "currency", "minor"), [("44.00", "EUR", 4400), ("705", "JPY", 705)]
    )
    def test_minor_units_round_trip(self, amount, currency, minor):
        assert to_minor_units(Decimal(amount), currency) == minor
        assert from_minor_units(minor, currency) == Decimal(amount)

    def test_wire_amount_has_two_decimals(self):
        assert str(wire_amount(Decimal("7"))) == "7.00"


class TestJsonWithAmounts:
    def test_amounts_anywhere_become_two_decimal_numbers(self):
        body = {"a": Decimal("1"), "nested": {"b": Decimal("2.5")}, "list": [Decimal("0.125")]}

        assert json_with_amounts(body) == b'{"a":1.00,"nested":{"b":2.50},"list":[0.13]}'

    def test_strings_that_look_like_markers_are_left_alone(self):
        assert json_with_amounts({"note": "@amount-0", "x": Decimal(1)}) == (
            b'{"note":"@amount-0","x":1.00}'
        )

    def test_non_finite_amounts_are_refused(self):
        with pytest.raises(ValueError, match="finite"):
            json_with_amounts({"amount": Decimal("NaN")})
