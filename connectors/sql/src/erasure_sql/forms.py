"""The values an email is searched as, whatever ``lower()`` the database has.

The host gives every form a store may hold (``Identifier.forms``: the domain in Unicode and
in punycode), lower-cased with Python's Unicode rules. A database lowers stored values its
own way: SQLite's ``lower()`` and PostgreSQL's in the C collation fold ASCII letters only
(``ÉLODIE`` becomes ``Élodie``), and PostgreSQL and MariaDB fold ``İ`` to a plain ``i``
where Python gives ``i̇``. So each form is sent in every shape such a ``lower()`` can give
for some case of it, and what comes back is checked again in Python against the forms:
the database may only widen the search, never narrow it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_VARIANTS", "c_lower_forms", "db_forms", "python_lower", "too_many_forms"]

#: Case variants of one value beyond which a database lowers with :func:`python_lower`.
MAX_VARIANTS = 64
_DOTTED_I = "i\u0307"  # Python's lower() of "İ"


def _variants(value: str) -> list[tuple[str, ...]]:
    return [(ch, ch.upper()) if not ch.isascii() and ch.upper() != ch and len(ch.upper()) == 1
            else (ch,) for ch in value]


def _count(options: list[tuple[str, ...]]) -> int:
    count = 1
    for o in options:
        count *= len(o)
    return count


def c_lower_forms(value: str) -> list[str]:
    """What an ASCII-only ``lower()`` gives for any case of ``value`` (lower-case already):
    non-ASCII letters stay in either case. Beyond :data:`MAX_VARIANTS`, all lower and all
    upper (callers that must be exact lower with :func:`python_lower` instead)."""
    options = _variants(value)
    count = _count(options)
    if count == 1:
        return [value]
    if count > MAX_VARIANTS:
        return [value, "".join(o[-1] for o in options)]
    return ["".join(p) for p in itertools.product(*options)]


def too_many_forms(values: Iterable[str]) -> bool:
    """Whether some value has more case variants than :func:`c_lower_forms` sends."""
    return any(_count(_variants(v)) > MAX_VARIANTS for v in values if not v.isascii())


def db_forms(values: Iterable[str]) -> list[str]:
    """Every value a database's ``lower(column)`` may give for a stored value that Python
    lower-cases to one of ``values``, sorted and without repeats."""
    out: set[str] = set()
    for value in values:
        base = [value]
        if _DOTTED_I in value:  # "İ": a plain "i" once lowered by the server, or kept
            base += [value.replace(_DOTTED_I, "i"), value.replace(_DOTTED_I, "İ")]
        for b in base:
            out.update(c_lower_forms(b) if not b.isascii() else (b,))
    return sorted(out)


def python_lower(value: Any) -> Any:
    """Python's Unicode ``lower()``: registered on SQLite connections as ``erasure_lower``."""
    return value.lower() if isinstance(value, str) else value
