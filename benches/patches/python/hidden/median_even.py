import unittest

from textkit.stats import median


class Hidden(unittest.TestCase):
    def test_even(self):
        self.assertEqual(median([4, 1, 3, 2]), 2.5)
        self.assertEqual(median([10, 20]), 15)
        self.assertEqual(median([1, 1, 5, 5]), 3)

    def test_odd_unchanged(self):
        self.assertEqual(median([3, 1, 2]), 2)
        self.assertEqual(median([9]), 9)


if __name__ == "__main__":
    unittest.main()
