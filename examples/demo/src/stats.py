"""Small statistics helpers."""


def mean(values):
    # TODO: return 0.0 for an empty list instead of raising ZeroDivisionError
    return sum(values) / len(values)


def clamp(x, low, high):
    # FIXME: swap low and high when low > high
    return max(low, min(x, high))


GREETING = "TODO is not a task inside a string"
