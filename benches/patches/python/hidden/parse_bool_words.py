import unittest

from textkit.strings import parse_bool


class Hidden(unittest.TestCase):
    def test_true_words(self):
        for text in ("true", "TRUE", " yes ", "Yes", "1", "on", "ON\n"):
            self.assertIs(parse_bool(text), True, text)

    def test_false_words(self):
        for text in ("false", "False", "no", " NO", "0", "off", "Off "):
            self.assertIs(parse_bool(text), False, text)

    def test_rejects_others(self):
        for text in ("maybe", "", "2", "yess", "t"):
            with self.assertRaises(ValueError):
                parse_bool(text)


if __name__ == "__main__":
    unittest.main()
