"""Card-number arithmetic shared by log redaction and the sandbox. No card data is stored here."""


def luhn_valid(number: str) -> bool:
    """The Luhn check digit test, on 12 to 19 digits."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def mask(number: str) -> str:
    """NetValve's mask: first six, asterisks, last four (`401200******5439`)."""
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"
