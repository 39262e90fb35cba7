"""Words that announce personal data and are written in any case: a birth keyword before a
date, an introduction or a civility before a name. All are found in one pass over the
lower-cased text, as each ``str.find`` or regular expression over a 2 KB text costs a
microsecond or more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fabrique.policy.patterns import Trigger

BIRTH = ("né le", "née le", "né(e) le", "naissance", "born", "birth", "dob")

# The name starts right after the cue (its space included). Each first letter costs: one
# that no other word here starts with (s, p …) adds 2 µs per 2 KB, so rarer cues are left
# to the capitalized forms in ``names``.
NAME_CUES = {
    "je m'appelle ": "intro", "je m’appelle ": "intro", "my name is ": "intro",
    "mon nom est ": "intro", "je me nomme ": "intro",
    "monsieur ": "civility", "madame ": "civility", "mademoiselle ": "civility",
    "docteur ": "civility", "maître ": "civility",
    "née ": "maiden", "épouse ": "maiden", "veuve ": "maiden",
}


def _by_first_letter(words: Iterable[str]) -> str:
    """An alternation that re enters only at the letters the words start with."""
    groups: dict[str, list[str]] = {}
    for word in sorted(set(words), key=len, reverse=True):  # the longest first: "née le"
        groups.setdefault(word[0], []).append(re.escape(word[1:]))
    return "|".join(f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in groups.items())


LOWER_CUES = Trigger(re.compile(_by_first_letter([*BIRTH, *NAME_CUES])), lowered=True)
