import unittest

from textkit.strings import camel_to_snake


class Hidden(unittest.TestCase):
    def test_acronyms(self):
        self.assertEqual(camel_to_snake("HTTPServer"), "http_server")
        self.assertEqual(camel_to_snake("getURLPath"), "get_url_path")
        self.assertEqual(camel_to_snake("parseJSON"), "parse_json")

    def test_plain_camel_case(self):
        self.assertEqual(camel_to_snake("parseHttpResponse"), "parse_http_response")
        self.assertEqual(camel_to_snake("Name"), "name")
        self.assertEqual(camel_to_snake("x"), "x")


if __name__ == "__main__":
    unittest.main()
