"""Text normalisation shared by labeling and search: how catalog words and keywords are compared."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


@lru_cache(maxsize=1)
def _combining_marks() -> re.Pattern[str]:
    # Every combining mark of the Basic Multilingual Plane (the accents of all living scripts)
    # as one character class, built on first use. Staying in the BMP keeps the class a fast
    # bitmap; filtering character by character would be the slowest part of labeling.
    marks = "".join(chr(cp) for cp in range(0x10000) if unicodedata.combining(chr(cp)))
    return re.compile(f"[{re.escape(marks)}]+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form of ``text``: NFKD, combining marks dropped, casefolded."""
    if not text.isascii():
        text = _combining_marks().sub("", unicodedata.normalize("NFKD", text))
    return text.casefold()


def normalize(text: str) -> str:
    """:func:`fold`, with runs of white space folded to one space: how keywords are compared."""
    return " ".join(fold(text).split())


_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")


def word_forms(phrase: str, plurals: bool = True) -> list[str]:
    """The normalized forms a keyword matches: itself and, with ``plurals``, simple English
    plural/singular forms of its last word (bust/busts, glass/glasses, -y/-ies)."""
    if not plurals:
        return [phrase]
    head, _, last = phrase.rpartition(" ")
    forms = [last]
    if last.endswith("ies") and len(last) > 4:
        forms.append(last[:-3] + "y")
    elif last.endswith(("sses", "xes", "zes", "ches", "shes")):
        forms.append(last[:-2])
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
        forms.append(last[:-1])
    elif last.endswith(_SIBILANT_ENDINGS):
        forms.append(last + "es")
    elif last.endswith("y") and len(last) > 2 and last[-2] not in "aeiou":
        forms.append(last[:-1] + "ies")
    elif last.endswith("o"):
        forms += [last + "s", last + "es"]
    else:
        forms.append(last + "s")
    prefix = head + " " if head else ""
    return list(dict.fromkeys(prefix + f for f in forms))
