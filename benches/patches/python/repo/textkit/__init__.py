"""Small text and number helpers."""
