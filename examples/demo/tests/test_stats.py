"""What src/stats.py does today, and must keep doing."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import stats  # noqa: E402


class StatsTest(unittest.TestCase):
    def test_mean_of_numbers(self):
        self.assertEqual(stats.mean([1, 2, 3]), 2)
        self.assertAlmostEqual(stats.mean([0.5, 1.5]), 1.0)

    def test_clamp_inside_and_outside(self):
        self.assertEqual(stats.clamp(5, 0, 10), 5)
        self.assertEqual(stats.clamp(-3, 0, 10), 0)
        self.assertEqual(stats.clamp(42, 0, 10), 10)


if __name__ == "__main__":
    unittest.main()
