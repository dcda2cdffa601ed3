"""Docstrings completed from shared parts: the one way the ops, metrics and losses do it.

A family of functions or classes shares its Args (the surface ops, the counting metrics) or
its whole text (the score ops); each writes that text once and completes its members here.
Keras-free, so the ops, which sit below the metrics, can use it.

Example:
    >>> fill("Scores.\\n{args}", args="    Args: ...")
    'Scores.\\n    Args: ...'
    >>> insert_before("Dice.\\n    Usage:", "\\n    Usage:", "\\n    Args: ...")
    'Dice.\\n    Args: ...\\n    Usage:'
"""


def fill(template: str, **parts: str) -> str:
    """`template` with each `{name}` replaced by `parts[name]`; a ValueError names a part the
    template does not hold (a docstring that would silently keep its placeholder)."""
    for name, text in parts.items():
        placeholder = "{" + name + "}"
        if placeholder not in template:
            raise ValueError(f"the docstring has no {placeholder!r} to fill: {template[:60]!r}")
        template = template.replace(placeholder, text)
    return template


def insert_before(doc: str, marker: str, text: str) -> str:
    """`doc` with `text` put before the first `marker`; a ValueError if there is none."""
    if marker not in doc:
        raise ValueError(f"the docstring has no {marker.strip()!r}: {doc[:60]!r}")
    return doc.replace(marker, text + marker, 1)
