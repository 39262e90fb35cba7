"""Person names found by the words around them, in French and English, without NER and
without a list of names: a civility (M., Mme, Dr, Mrs …), a greeting (Dear, Bonjour …), an
introduction (je m'appelle, my name is …), a form label (Nom :, Name:) or a letter's closing
(Cordialement, + a name on the next line). Precision first: a capitalized word alone is not
a name, and words that follow cues but name no one ("Dear Customer") are refused.

Once a cue has found a name, its other occurrences in the same text are names too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from fabrique.policy.cues import LOWER_CUES, NAME_CUES, alternation
from fabrique.policy.patterns import Entity, Prepared

# Upper-case letters of the Latin, Greek and Cyrillic blocks: re has no \p{Lu}.
UPPER = "".join(c for c in map(chr, range(0x530)) if c.isupper())
_SP = r"[ \u00a0]"
# Jean-Pierre, O'Connor; not L'équipe, whose elided article is no name.
_WORD = rf"[{UPPER}](?:[^\W\d_]|['’](?=[{UPPER}]))*(?:-[^\W\d_]+)*"
_TOKEN = rf"(?:{_WORD}|[{UPPER}]\.(?!\w))"  # a name word, or an initial ("J.")
# Inside a name, capitalized particles too: Marine Le Pen, Jean-Pierre de La Fontaine.
_PARTICLE = (r"(?:(?:de|du|des|van|von|der|den|da|di|del|della|dos|das|le|la|ter|ten|zu|"
             r"De|Du|Des|Van|Von|Der|Den|Da|Di|Del|Della|Dos|Das|Le|La|Ter|Ten)" + _SP
             + r"+(?:(?:La|Le|la|le|der|den|Der|Den)" + _SP + r"+)?|[dD]['’])")
_FIRST = re.compile(rf"(?:(?:de|du|van|von|van der|von der){_SP}+|d['’])?(?P<tok>{_TOKEN})")
_WORD_RX = re.compile(_WORD)
_NEXT = re.compile(rf"{_SP}+{_PARTICLE}?(?P<tok>{_TOKEN})")
_MAX_WORDS = 4

# Words that can follow a cue with a capital and yet are no one's name.
_STOP_TEXT = """
le la les un une des du de the a an and et or ou but mais il elle ils elles je tu nous vous on
i he she it we they you his her their this that ce cet cette ces mon ma mes ton ta son sa ses
notre votre leur my your our is est merci thanks thank cordialement regards bonjour bonsoir hello
hi hey dear cher chère chers chères salut monsieur madame mademoiselle messieurs mesdames sir
madam m mm mr mrs ms mx miss dr pr prof me mme mmes mlle mlles docteur professeur maître maitre
lady lord team équipe equipe all tous toutes tout everyone everybody
world there folks guys customer customers client clients cliente clientes colleague colleagues
collègue collègues friend friends ami amis amie amies member members membre membres partner
partners partenaire partenaires user users utilisateur utilisateurs reader readers lecteur
lecteurs hiring manager director directeur directrice president président présidente maire
mayor support service services sales board committee comité editor admin administrator
applicant applicants candidate candidates candidat candidats candidate student students
parent parents valued voici here please veuillez suite if si for pour with avec in en dans
on sur at to à au aux from de par by as comme so donc yes oui no non ok okay good great
monday tuesday wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi
samedi dimanche january february march april may june july august september october november
december janvier février fevrier mars avril mai juin juillet août aout septembre octobre
novembre décembre decembre
best cheers prochain prochaine réf ref bât bat né née born objet subject total adresse address
bénéficiaire beneficiaire prénom prenom nom name date tél tel phone french english british
american german spanish italian belgian swiss canadian irish dutch polish français française
anglais anglaise allemand allemande espagnol espagnole italien italienne belge suisse
sorry glad happy afraid ready back writing calling looking interested available new
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

# Cues that only count capitalized, by kind; the name must start right after the cue.
_CUE_WORDS = {
    "civility": "M.|MM.|Mme|Mme.|Mmes|Mlle|Mlle.|Mlles|Monsieur|Madame|Mademoiselle|Dr|Dr.|"
                "Docteur|Pr|Pr.|Professeur|Me|Me.|Maître|Maitre|Mr|Mr.|Mrs|Mrs.|Ms|Ms.|Mx|Mx.|"
                "Miss|Sir|Dame|Lady|Lord|Doctor|Prof|Prof.|Professor",
    "dear": "Dear|Dearest|Cher|Chère|Chers|Chères",
    "greeting": "Bonjour|Bonsoir|Salut|Coucou|Hello|Hi|Hey",
    "label": "Nom|NOM|Prénom|PRÉNOM|Prenom|PRENOM|Nom de famille|Nom d'usage|Nom de naissance|"
             "Nom complet|Nom et prénom|Nom et prénoms|Prénom et nom|Name|NAME|Full name|"
             "First name|Last name|Surname|Family name|Given name|Titulaire|Account holder|"
             "Patient|Patiente|Auteur|Author|Signé|Signed|Signature",
    "intro": "Signé par|Signed by",
    "closing": "Cordialement|Bien cordialement|Bien à vous|Sincères salutations|Salutations|"
               "Amicalement|Bien amicalement|Respectueusement|Best regards|Kind regards|"
               "Warm regards|Regards|Best wishes|Sincerely|Yours sincerely|Yours faithfully|"
               "Yours truly|Thanks|Thank you|Many thanks|Merci|Cheers|Best|Signé|Signed",
}
_KINDS: dict[str, list[str]] = {}  # a cue word -> its kinds ("Signé" ends a letter or labels)
for _cue_kind, _cue_words in _CUE_WORDS.items():
    for _cue in _cue_words.split("|"):
        _KINDS.setdefault(_cue, []).append(_cue_kind)
# As a trie (see ``alternation``): the longest first ("Nom de famille" before "Nom"). The kind
# is read from what follows.
_CUES = re.compile(
    "(" + alternation(_KINDS) + ")"
    r"(?:(?P<colon>[ \u00a0]*:[ \u00a0]*)|(?P<eol>,[ \u00a0\t]*\n?|[.!]?[ \u00a0\t]*\n)[ \u00a0\t]*"
    r"(?:--[ \u00a0\t]*\n[ \u00a0\t]*)?"  # a signature's "-- " line
    r"|[ \u00a0]+)")


def _kind(m: re.Match[str]) -> str | None:
    kinds = _KINDS[m.group(1)]
    if m.group("colon") is not None:
        return "label" if "label" in kinds else None
    if m.group("eol") is not None:
        return "closing" if "closing" in kinds else None
    return next((k for k in kinds if k not in ("label", "closing")), None)


_SCORES = {"self": 0.8, "civility": 0.9, "label": 0.9, "intro": 0.9, "closing": 0.85, "dear": 0.85,
           "maiden": 0.85, "greeting": 0.8}
PROPAGATED = 0.75  # another occurrence of a name a cue found
_TRUSTED = 0.85  # names that strong may be propagated
_END_OF_GREETING = re.compile(r"[ \u00a0]*(?:[,!:;.?\n]|\Z)")
_END_OF_LINE = re.compile(r"[ \u00a0\t]*(?:[,\r\n]|\Z)")


@dataclass(frozen=True, slots=True)
class PersonRules:
    """The finder of person names by context (type PERSON)."""

    type: str = "PERSON"

    def find(self, doc: Prepared) -> Iterator[Entity]:
        found = [e for e in self._cued(doc) if e is not None]
        yield from found
        yield from _propagate(doc.text, [e for e in found if e.score >= _TRUSTED])

    def _cued(self, doc: Prepared) -> Iterator[Entity | None]:
        text = doc.text
        for m in _CUES.finditer(text):
            kind = _kind(m)
            if kind and (m.start() == 0 or not text[m.start() - 1].isalnum()):
                yield _name(text, m.end(), kind)
        low = doc.lower()
        for start, end in doc.spans(LOWER_CUES) or ():
            kind = NAME_CUES.get(low[start:end]) if low else None
            if kind and (start == 0 or not text[start - 1].isalnum()):
                yield _name(text, end, kind)


def _name(text: str, pos: int, kind: str) -> Entity | None:
    """The name that starts at ``pos``, if one does and its cue's conditions hold."""
    m = _FIRST.match(text, pos)
    if m is None or _stop(m.group("tok")):
        return None
    start, end, words = m.start(), m.end(), 1
    while words < _MAX_WORDS and (m := _NEXT.match(text, end)) and not _stop(m.group("tok")):
        end, words = m.end(), words + 1
    if text[start:end].endswith(".") and end - start == 2:
        return None  # an initial alone
    if kind == "greeting" and not _END_OF_GREETING.match(text, end):
        return None  # "Hello World of …": a greeting takes a name alone, then punctuation
    if kind == "closing" and not _END_OF_LINE.match(text, end):
        return None
    return Entity("PERSON", start, end, text[start:end], _SCORES[kind])


_AND = re.compile(rf"{_SP}+(?:et|and|&|ou|or){_SP}+(?:{_PARTICLE})?(?P<tok>{_TOKEN})")


def conjoined(text: str, found: list[Entity]) -> list[Entity]:
    """Names joined to a name found by "et", "and" …: "Laure Gay et Xavier"."""
    out = []
    for e in found:
        if e.type != "PERSON" or not (m := _AND.match(text, e.end)) or _stop(m.group("tok")):
            continue
        start, end, words = m.start("tok"), m.end(), 1
        while words < _MAX_WORDS and (n := _NEXT.match(text, end)) and not _stop(n.group("tok")):
            end, words = n.end(), words + 1
        if end - start > 2:  # not an initial alone
            out.append(Entity("PERSON", start, end, text[start:end], PROPAGATED))
    return out


def _stop(token: str) -> bool:
    return token.casefold().rstrip(".") in STOP_WORDS


def _propagate(text: str, names: list[Entity]) -> Iterator[Entity]:
    """Other occurrences of the names found, and of their words (Mme Dupont … Dupont)."""
    seen = {(e.start, e.end) for e in names}
    words = {w for e in names for w in _WORD_RX.findall(e.text) if len(w) > 2}
    words |= {e.text for e in names}
    for word in words:
        i = text.find(word)
        while i >= 0:
            j = i + len(word)
            whole = (i == 0 or not text[i - 1].isalnum()) and (j == len(text) or not text[j].isalnum())
            if whole and (i, j) not in seen:
                yield Entity("PERSON", i, j, word, PROPAGATED)
            i = text.find(word, i + 1)
