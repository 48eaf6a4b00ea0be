import unittest

from textkit.seqs import flatten


class Hidden(unittest.TestCase):
    def test_deep(self):
        self.assertEqual(flatten([1, [2, [3, [4, [5]]]], 6]), [1, 2, 3, 4, 5, 6])
        self.assertEqual(flatten([[[]], []]), [])

    def test_tuples_and_strings_kept(self):
        self.assertEqual(flatten([(1, 2), ["ab", ["cd"]]]), [(1, 2), "ab", "cd"])


if __name__ == "__main__":
    unittest.main()
