"""Words that announce personal data and are written in any case: a birth keyword before a
date, an introduction or a civility before a name. All are found in one pass over the
lower-cased text, as each ``str.find`` or regular expression over a 2 KB text costs a
microsecond or more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fabrique.policy.patterns import Trigger

BIRTH = ("né le", "née le", "né(e) le", "naissance", "born", "birth", "dob")

# The name starts right after the cue (its space included). Each first letter costs: one
# that no other word here starts with (s, p …) adds 2 µs per 2 KB, so rarer cues are left
# to the capitalized forms in ``names``.
NAME_CUES = {
    "je m'appelle ": "intro", "je m’appelle ": "intro", "my name is ": "intro",
    "mon nom est ": "intro", "je me nomme ": "intro", "i'm ": "self", "i’m ": "self",
    "i am ": "self",
    "monsieur ": "civility", "madame ": "civility", "mademoiselle ": "civility",
    "docteur ": "civility", "maître ": "civility",
    "née ": "maiden", "épouse ": "maiden", "veuve ": "maiden",
}


def alternation(words: Iterable[str]) -> str:
    """The words as one alternation shaped as a trie (no group around it). re tries the
    branches of an alternation one after the other at every position: with one branch per
    first letter, then per next letter, each character is compared once. A word comes before
    its prefixes, as if the longest were listed first ("née le" before "née")."""
    tree: dict[str, Any] = {}
    for word in set(words):
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _branches(tree)


def _branches(node: dict[str, Any]) -> str:
    branches = [re.escape(ch) + _rest(child) for ch, child in node.items() if ch]
    return "|".join(branches)


def _rest(node: dict[str, Any]) -> str:
    ends, inner = "" in node, _branches(node)
    if not inner:
        return ""
    if not ends and len(node) == 1:
        return inner
    return f"(?:{inner})" + ("?" if ends else "")


LOWER_CUES = Trigger(re.compile(alternation([*BIRTH, *NAME_CUES])), lowered=True)
