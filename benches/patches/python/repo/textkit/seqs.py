"""Helpers for sequences and ranges."""


def merge_intervals(intervals):
    """Merges overlapping (start, end) pairs; returns them sorted by start."""
    merged = []
    for start, end in sorted(intervals):
        # TODO: also merge intervals that only touch: (1, 3) and (3, 5) become (1, 5)
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def flatten(items):
    """[1, [2, 3], 4] -> [1, 2, 3, 4]."""
    out = []
    for item in items:
        # TODO: flatten lists nested to any depth; tuples and strings are kept as single items
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out
