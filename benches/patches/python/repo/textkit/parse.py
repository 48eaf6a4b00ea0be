"""Parsers for small human-written values."""

import re

_DURATION = re.compile(r"(\d+)([hm])")


def parse_duration(text):
    """'1h30m' -> 5400 seconds. Units: h (hours), m (minutes)."""
    # TODO: support seconds with the 's' suffix, e.g. '1m30s' is 90 and '45s' is 45
    total = 0
    units = {"h": 3600, "m": 60}
    matched = ""
    for number, unit in _DURATION.findall(text):
        total += int(number) * units[unit]
        matched += number + unit
    if not matched or matched != text:
        raise ValueError(f"bad duration: {text!r}")
    return total


def to_roman(number):
    """An integer from 1 to 3999 in Roman numerals."""
    if not 1 <= number <= 3999:
        raise ValueError("out of range")
    # TODO: use subtractive notation: 4 is IV, 9 is IX, 40 is XL, 90 is XC, 400 is CD, 900 is CM
    numerals = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), (5, "V"), (1, "I")]
    out = []
    for value, letters in numerals:
        while number >= value:
            out.append(letters)
            number -= value
    return "".join(out)
