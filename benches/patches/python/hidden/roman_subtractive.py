import unittest

from textkit.parse import to_roman


class Hidden(unittest.TestCase):
    def test_subtractive(self):
        cases = {
            4: "IV", 9: "IX", 14: "XIV", 40: "XL", 90: "XC", 400: "CD", 900: "CM",
            1994: "MCMXCIV", 2024: "MMXXIV", 3999: "MMMCMXCIX", 444: "CDXLIV",
        }
        for number, expected in cases.items():
            self.assertEqual(to_roman(number), expected, number)

    def test_additive_unchanged(self):
        self.assertEqual(to_roman(3), "III")
        self.assertEqual(to_roman(1666), "MDCLXVI")
        with self.assertRaises(ValueError):
            to_roman(4000)


if __name__ == "__main__":
    unittest.main()
