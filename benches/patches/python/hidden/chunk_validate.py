import unittest

from textkit.stats import chunk


class Hidden(unittest.TestCase):
    def test_bad_sizes(self):
        for size in (0, -1, -10):
            with self.assertRaises(ValueError):
                chunk([1, 2, 3], size)
        with self.assertRaises(ValueError):
            chunk([], 0)

    def test_good_sizes(self):
        self.assertEqual(chunk([1, 2, 3], 1), [[1], [2], [3]])
        self.assertEqual(chunk([1, 2, 3], 5), [[1, 2, 3]])


if __name__ == "__main__":
    unittest.main()
