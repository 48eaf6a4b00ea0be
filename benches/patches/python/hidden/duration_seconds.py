import unittest

from textkit.parse import parse_duration


class Hidden(unittest.TestCase):
    def test_seconds(self):
        self.assertEqual(parse_duration("1m30s"), 90)
        self.assertEqual(parse_duration("45s"), 45)
        self.assertEqual(parse_duration("1h1m1s"), 3661)

    def test_minutes_and_hours_unchanged(self):
        self.assertEqual(parse_duration("1h30m"), 5400)
        self.assertEqual(parse_duration("15m"), 900)
        for bad in ("soon", "10x", "s", ""):
            with self.assertRaises(ValueError):
                parse_duration(bad)


if __name__ == "__main__":
    unittest.main()
