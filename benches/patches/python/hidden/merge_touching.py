import unittest

from textkit.seqs import merge_intervals


class Hidden(unittest.TestCase):
    def test_touching(self):
        self.assertEqual(merge_intervals([(1, 3), (3, 5)]), [(1, 5)])
        self.assertEqual(merge_intervals([(3, 5), (1, 3), (5, 6)]), [(1, 6)])

    def test_apart_and_overlapping(self):
        self.assertEqual(merge_intervals([(1, 2), (4, 5)]), [(1, 2), (4, 5)])
        self.assertEqual(merge_intervals([(1, 10), (2, 3)]), [(1, 10)])


if __name__ == "__main__":
    unittest.main()
