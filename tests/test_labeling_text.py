"""labeling/text.py: how catalog words and keywords are compared (shared by labeling and search)."""
from __future__ import annotations

import pytest

from muses.labeling.text import fold, normalize, word_forms


def test_fold_is_case_and_accent_insensitive_but_keeps_spacing():
    assert fold("Ägyptische  BÜSTE") == "agyptische  buste"
    assert fold("plain ascii") == "plain ascii"


def test_normalize_folds_case_accents_and_spaces():
    assert normalize("Büste") == "buste"
    assert normalize("CAFÉ") == "cafe"
    assert normalize("  Albumen   silver\tprints ") == "albumen silver prints"
    assert normalize("ﬁbula") == "fibula"  # NFKD splits the ligature


@pytest.mark.parametrize(
    ("word", "forms"),
    [
        ("bust", ["bust", "busts"]),
        ("busts", ["busts", "bust"]),
        ("vase", ["vase", "vases"]),
        ("statuette", ["statuette", "statuettes"]),
        ("glass", ["glass", "glasses"]),
        ("glasses", ["glasses", "glass"]),
        ("reliquary", ["reliquary", "reliquaries"]),
        ("reliquaries", ["reliquaries", "reliquary"]),
        ("albumen silver print", ["albumen silver print", "albumen silver prints"]),
    ],
)
def test_word_forms(word, forms):
    assert word_forms(word) == forms
    assert word_forms(word, plurals=False) == [word]
