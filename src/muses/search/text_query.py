"""What a search box's text asks for: every word (or "quoted phrase") must be found somewhere in
the item's catalog fields, each word in any of its spellings and number forms.

``colour`` also finds ``color``, ``colours`` and ``colors``: British and American spellings come
from a small curated table (:data:`SPELLINGS`), plurals from the rules labeling uses
(:func:`muses.labeling.text.word_forms`). The variants are applied when searching, so an index
built before a table change needs no rebuild. A quoted phrase is matched as it is typed.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from muses.labeling.text import word_forms

# British spelling -> American spelling, for the words catalogs use. Both directions are
# searched. Kept small on purpose: a curator can read it, and every pair is a real catalog word.
SPELLINGS: dict[str, str] = {
    "colour": "color", "coloured": "colored", "colouring": "coloring", "watercolour": "watercolor",
    "bodycolour": "bodycolor", "multicoloured": "multicolored", "grey": "gray", "greyish": "grayish",
    "centre": "center", "centrepiece": "centerpiece", "jewellery": "jewelry", "jeweller": "jeweler",
    "theatre": "theater", "sceptre": "scepter", "sabre": "saber", "metre": "meter", "centimetre": "centimeter",
    "millimetre": "millimeter", "lustre": "luster", "lustreware": "lusterware", "fibre": "fiber",
    "mould": "mold", "moulded": "molded", "moulding": "molding", "armour": "armor", "armoured": "armored",
    "enamelled": "enameled", "enamelling": "enameling", "labelled": "labeled",
    "modelled": "modeled", "modelling": "modeling", "travelling": "traveling", "marvellous": "marvelous",
    "woollen": "woolen", "plough": "plow", "catalogue": "catalog", "ageing": "aging", "aluminium": "aluminum",
    "harbour": "harbor", "honour": "honor", "favour": "favor", "neighbour": "neighbor", "parlour": "parlor",
    "splendour": "splendor", "vapour": "vapor", "vigour": "vigor", "sulphur": "sulfur", "tyre": "tire",
    "cheque": "check", "programme": "program", "pyjamas": "pajamas", "storey": "story", "whisky": "whiskey",
    "anaesthesia": "anesthesia", "archaeology": "archeology", "archaeological": "archeological",
    "mediaeval": "medieval", "encyclopaedia": "encyclopedia", "paediatric": "pediatric",
    "oesophagus": "esophagus", "manoeuvre": "maneuver", "gaol": "jail", "draught": "draft",
    "cosy": "cozy", "practise": "practice", "defence": "defense", "licence": "license", "offence": "offense",
}
_BOTH_WAYS = {**SPELLINGS, **{us: gb for gb, us in SPELLINGS.items()}}


def words(value: str) -> list[str]:
    """The words of ``value`` as the search indexes see them (SQLite FTS5's unicode61 tokenizer
    with remove_diacritics 2): letters and digits, accents dropped, lower case."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", stripped.lower())


def spellings(word: str) -> list[str]:
    """``word`` in each spelling and number it may be written in: itself, its British/American
    twin, and the singular and plural of each (in that order, no repeats)."""
    twins = [word] + ([_BOTH_WAYS[word]] if word in _BOTH_WAYS else [])
    forms = [f for twin in twins for f in word_forms(twin)]
    # a plural's singular may have a twin too ("colours" -> "colour" -> "color")
    forms += [_BOTH_WAYS[f] for f in list(forms) if f in _BOTH_WAYS]
    return list(dict.fromkeys(f for twin in forms for f in word_forms(twin)))


@dataclass(frozen=True)
class Clause:
    """One thing every match must hold: any of ``alternatives``, each a phrase (a tuple of words
    that must follow each other; most are one word)."""

    alternatives: tuple[tuple[str, ...], ...]


_TERMS = re.compile(r'"([^"]*)"|(\S+)')


def terms(text: str) -> list[str]:
    """The words and "quoted phrases" of a search box, as typed (before any is dropped or merged)."""
    return [quoted or bare for quoted, bare in _TERMS.findall(text)]


def parse(text: str) -> list[Clause]:
    """The clauses of a search box: each word (in all its :func:`spellings`) and each "quoted
    phrase" (as typed). A word with punctuation inside ("1985.141.1") is the phrase of its parts,
    which is how the indexes split it."""
    clauses = []
    for quoted, bare in _TERMS.findall(text):
        parts = words(quoted or bare)
        if not parts:
            continue
        if len(parts) == 1 and not quoted:
            clauses.append(Clause(tuple((form,) for form in spellings(parts[0]))))
        else:
            clauses.append(Clause((tuple(parts),)))
    return list(dict.fromkeys(clauses))
