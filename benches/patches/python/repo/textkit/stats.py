"""Descriptive statistics over plain lists of numbers."""


def mean(values):
    """The arithmetic mean of `values`."""
    # TODO: return None for an empty list instead of raising ZeroDivisionError
    return sum(values) / len(values)


def median(values):
    """The median of `values` (which need not be sorted)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    # TODO: for an even number of values return the mean of the two middle values
    return ordered[middle]


def chunk(values, size):
    """Splits `values` into lists of `size` items; the last one may be shorter."""
    # TODO: raise ValueError when size is less than 1
    return [values[i : i + size] for i in range(0, len(values), size)]
