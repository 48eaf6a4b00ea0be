"""The behaviour that exists today."""

import unittest

from textkit.parse import parse_duration, to_roman
from textkit.seqs import flatten, merge_intervals
from textkit.stats import chunk, mean, median
from textkit.strings import camel_to_snake, parse_bool, slugify


class Stats(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)
        self.assertEqual(mean([5]), 5)

    def test_median_odd(self):
        self.assertEqual(median([3, 1, 2]), 2)
        self.assertEqual(median([7]), 7)

    def test_chunk(self):
        self.assertEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]])
        self.assertEqual(chunk([], 3), [])


class Strings(unittest.TestCase):
    def test_slugify_simple(self):
        self.assertEqual(slugify("Hello World"), "hello-world")
        self.assertEqual(slugify("abc"), "abc")

    def test_camel_to_snake_simple(self):
        self.assertEqual(camel_to_snake("parseHttpResponse"), "parse_http_response")
        self.assertEqual(camel_to_snake("Name"), "name")
        self.assertEqual(camel_to_snake("x"), "x")

    def test_parse_bool(self):
        self.assertIs(parse_bool("true"), True)
        self.assertIs(parse_bool("false"), False)
        with self.assertRaises(ValueError):
            parse_bool("maybe")


class Parse(unittest.TestCase):
    def test_duration(self):
        self.assertEqual(parse_duration("1h30m"), 5400)
        self.assertEqual(parse_duration("2h"), 7200)
        self.assertEqual(parse_duration("15m"), 900)
        with self.assertRaises(ValueError):
            parse_duration("soon")

    def test_roman_additive(self):
        self.assertEqual(to_roman(1), "I")
        self.assertEqual(to_roman(3), "III")
        self.assertEqual(to_roman(2023), "MMXXIII")
        self.assertEqual(to_roman(1666), "MDCLXVI")
        with self.assertRaises(ValueError):
            to_roman(0)


class Seqs(unittest.TestCase):
    def test_merge_overlapping(self):
        self.assertEqual(merge_intervals([(5, 8), (1, 4), (2, 6)]), [(1, 8)])
        self.assertEqual(merge_intervals([(1, 2), (4, 5)]), [(1, 2), (4, 5)])
        self.assertEqual(merge_intervals([]), [])

    def test_flatten_one_level(self):
        self.assertEqual(flatten([1, [2, 3], 4]), [1, 2, 3, 4])
        self.assertEqual(flatten([]), [])


if __name__ == "__main__":
    unittest.main()
