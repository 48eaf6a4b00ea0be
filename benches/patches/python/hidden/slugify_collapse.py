import unittest

from textkit.strings import slugify


class Hidden(unittest.TestCase):
    def test_collapse_and_strip(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")
        self.assertEqual(slugify("  --Rust & Python 3--  "), "rust-python-3")
        self.assertEqual(slugify("a___b...c"), "a-b-c")
        self.assertEqual(slugify("Hello World"), "hello-world")
        self.assertEqual(slugify("!!!"), "")


if __name__ == "__main__":
    unittest.main()
