import unittest

from textkit.stats import mean


class Hidden(unittest.TestCase):
    def test_empty_is_none(self):
        self.assertIsNone(mean([]))

    def test_still_averages(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)
        self.assertEqual(mean([-2, 2]), 0)


if __name__ == "__main__":
    unittest.main()
