"""String helpers."""

import re


def slugify(title):
    """A URL slug for `title`: lower case words joined by '-'."""
    slug = title.strip().lower().replace(" ", "-")
    # TODO: collapse every run of characters other than a-z and 0-9 into a single '-'
    #       and strip leading and trailing '-'
    return slug


def camel_to_snake(name):
    """'parseHttpResponse' -> 'parse_http_response'."""
    # TODO: keep acronyms together: 'HTTPServer' -> 'http_server', 'getURLPath' -> 'get_url_path'
    return re.sub(r"([A-Z])", r"_\1", name).lower().lstrip("_")


def parse_bool(text):
    """'true' -> True, 'false' -> False; anything else is a ValueError."""
    # TODO: also accept 'yes'/'no', '1'/'0' and 'on'/'off', ignoring case and surrounding whitespace
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"not a boolean: {text!r}")
