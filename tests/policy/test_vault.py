"""Vault: placeholders go out, originals come back, whatever the text and however it is split."""

from __future__ import annotations

import itertools
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabrique.policy import Entity
from fabrique.policy.vault import StreamRestorer, Vault, VaultStore

IBAN = "FR76 3000 6000 0112 3456 7890 189"
TEXT = ("Bonjour, je suis Marie Dupont. Mon IBAN est FR76 3000 6000 0112 3456 7890 189, "
        "mon e-mail marie.dupont@example.fr. Merci, Marie Dupont")

# Pieces that make collisions likely: keys, near-keys, delimiters, JSON escapes.
PIECES = ["«", "»", "EMAIL_1", "EMAIL_12", "EMAIL", "IBAN_1", "IBAN_2", "FR_NIR_1", "PERSON_1", "_",
          "1", "2", "E", " ", "x", "é", "\\", "\\u00ab", "\\u00AB", "\\u00bb", "\\u00BB", "\\u00",
          "\\n", "\\\\", '"', "u00", "«EMAIL_1»", "\\u00abIBAN_1\\u00bb", "\n"]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=25).map("".join)
TYPES = ["EMAIL", "IBAN", "PERSON", "FR_NIR", "fr-nir"]


def entities(text: str, found: dict[str, list[str]]) -> list[Entity]:
    """Every occurrence of each value, as an entity of its type."""
    out = []
    for kind, values in found.items():
        for value in values:
            start = text.find(value)
            while start >= 0:
                out.append(Entity(kind, start, start + len(value), value, 1.0))
                start = text.find(value, start + len(value))
    return sorted(out, key=lambda e: e.start)


@st.composite
def spans(draw: st.DrawFn, text: str) -> list[Entity]:
    """Random non-empty, non-overlapping (possibly adjacent) spans of `text`."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=12)) - {len(text)})
    bounds = [0, *cuts, len(text)] if text else []
    out = []
    for start, end in itertools.pairwise(bounds):
        if draw(st.booleans()):
            out.append(Entity(draw(st.sampled_from(TYPES)), start, end, text[start:end], 1.0))
    return out


def sample_vault() -> Vault:
    vault = Vault()
    for i in range(12):  # IBAN_1 … IBAN_12: one key is a prefix of another
        vault.placeholder("IBAN", f'FR{i} "q" \\ é')
    vault.placeholder("EMAIL", "a@b.fr")
    vault.placeholder("FR_NIR", "1 84 12 76 451 089 46")
    return vault


def chunked(text: str, splits: list[int]) -> list[str]:
    points = sorted(splits)
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


# -- pseudonymize and restore ----------------------------------------------------------------

def test_french_text_round_trip() -> None:
    vault = Vault()
    found = {"PERSON": ["Marie Dupont"], "IBAN": [IBAN], "EMAIL": ["marie.dupont@example.fr"]}
    out = vault.pseudonymize(TEXT, entities(TEXT, found))
    assert out == ("Bonjour, je suis «PERSON_1». Mon IBAN est «IBAN_1», mon e-mail «EMAIL_1». "
                   "Merci, «PERSON_1»")
    assert vault.restore(out) == TEXT
    assert vault.counts() == {"PERSON": 1, "IBAN": 1, "EMAIL": 1} and len(vault) == 3


def test_repr_shows_counts_not_values() -> None:
    vault = Vault()
    vault.pseudonymize(TEXT, entities(TEXT, {"PERSON": ["Marie Dupont"], "IBAN": [IBAN]}))
    assert repr(vault) == "Vault(IBAN=1, PERSON=1)"
    assert "Dupont" not in repr(vault) and "FR76" not in str(vault)


def test_same_value_same_placeholder_per_type() -> None:
    vault = Vault()
    assert vault.placeholder("EMAIL", "a@b.fr") == vault.placeholder("EMAIL", "a@b.fr") == "«EMAIL_1»"
    assert vault.placeholder("EMAIL", "c@d.fr") == "«EMAIL_2»"
    assert vault.placeholder("PERSON", "a@b.fr") == "«PERSON_1»"  # numbering is per type
    # Types that read the same in a key still never share one.
    assert vault.placeholder("fr-nir", "x") == "«FR_NIR_1»"
    assert vault.placeholder("FR_NIR", "x") == "«FR_NIR_2»"
    assert vault.counts() == {"EMAIL": 2, "PERSON": 1, "fr-nir": 1, "FR_NIR": 1}


def test_values_are_exact_not_normalized() -> None:
    vault = Vault()
    assert vault.placeholder("IBAN", IBAN) != vault.placeholder("IBAN", IBAN.replace(" ", ""))


def test_bare_form_restored_only_as_whole_word_of_this_vault() -> None:
    vault = Vault()
    vault.pseudonymize(TEXT, entities(TEXT, {"PERSON": ["Marie Dupont"], "IBAN": [IBAN]}))
    answer = "Merci PERSON_1, virement vers IBAN_1. PERSON_12 xIBAN_1 IBAN_1x «IBAN_2» EMAIL_1 «IBAN_1»"
    assert vault.restore(answer) == (f"Merci Marie Dupont, virement vers {IBAN}. "
                                     f"PERSON_12 xIBAN_1 IBAN_1x «IBAN_2» EMAIL_1 {IBAN}")


def test_guillemets_only_when_exact() -> None:
    vault = Vault()
    vault.placeholder("IBAN", "X")
    # « IBAN_1 » is not the delimited form, but IBAN_1 in it is still a whole word.
    assert vault.restore("«IBAN_1» « IBAN_1 » «IBAN 1» «iban_1»") == "X « X » «IBAN 1» «iban_1»"


def test_placeholder_like_literals_in_the_input_survive() -> None:
    vault = Vault()
    text = "J'ai écrit «EMAIL_1» et EMAIL_2 (voir XEMAIL_3); contact: a@b.fr"
    out = vault.pseudonymize(text, entities(text, {"EMAIL": ["a@b.fr"]}))
    assert out.endswith("contact: «EMAIL_4»")
    assert vault.restore(out) == text


def test_avoid_across_the_texts_of_a_request() -> None:
    vault = Vault()
    first, second = "mail a@b.fr", "the model said «EMAIL_1»"
    for text in (first, second):
        vault.avoid(text)
    out = vault.pseudonymize(first, entities(first, {"EMAIL": ["a@b.fr"]}))
    assert out == "mail «EMAIL_2»"
    assert vault.restore(vault.pseudonymize(second, [])) == second


def test_pseudonymize_rejects_overlaps_and_skips_empty_spans() -> None:
    vault = Vault()
    with pytest.raises(ValueError):
        vault.pseudonymize("abcdef", [Entity("X", 0, 3, "abc", 1.0), Entity("X", 2, 4, "cd", 1.0)])
    assert vault.pseudonymize("abc", [Entity("X", 1, 1, "", 1.0)]) == "abc" and len(vault) == 0


@given(texts.flatmap(lambda t: st.tuples(st.just(t), spans(t))))
def test_round_trip_any_text(case: tuple[str, list[Entity]]) -> None:
    text, found = case
    vault = Vault()
    assert vault.restore(vault.pseudonymize(text, found)) == text


@given(st.lists(texts.flatmap(lambda t: st.tuples(st.just(t), spans(t))), min_size=2, max_size=3))
def test_round_trip_several_texts_one_vault(cases: list[tuple[str, list[Entity]]]) -> None:
    vault = Vault()
    for text, _ in cases:
        vault.avoid(text)
    outs = [vault.pseudonymize(text, found) for text, found in cases]
    assert [vault.restore(out) for out in outs] == [text for text, _ in cases]


# -- streams ---------------------------------------------------------------------------------

def test_stream_emits_what_cannot_be_a_placeholder_at_once() -> None:
    restorer = StreamRestorer(sample_vault())
    assert restorer.feed("Bonjour ") == "Bonjour "
    assert restorer.feed("BONJOUR, «ZZ") == "BONJOUR, «ZZ"
    assert restorer.feed("«EMA") == ""
    assert restorer.feed("IL_1» !") == "a@b.fr !"


def test_stream_waits_for_the_end_of_the_number() -> None:
    vault = sample_vault()
    restorer = StreamRestorer(vault)
    assert restorer.feed("«IBAN_1") == ""
    assert restorer.feed("2") == ""
    assert restorer.feed("» et IBAN_1") == vault.restore("«IBAN_12» et ")
    assert restorer.flush() == vault.restore("IBAN_1")  # the stream's end completes the word


def test_stream_holds_back_little() -> None:
    restorer = StreamRestorer(sample_vault(), json_string=True)
    assert restorer.feed("x" * 100 + "«" + "IBAN" * 20) == "x" * 100 + "«" + "IBAN" * 20


@given(texts, st.lists(st.integers(0, 200)), st.booleans())
def test_stream_is_chunking_invariant(text: str, splits: list[int], json_string: bool) -> None:
    vault = sample_vault()
    restorer = StreamRestorer(vault, json_string=json_string)
    longest = max(len(key) for key in vault._values)
    out = []
    for chunk in chunked(text, [min(s, len(text)) for s in splits]):
        out.append(restorer.feed(chunk))
        assert len(restorer._pending) <= longest + 11  # \u00ab KEY \u00b
    whole = vault.restore_json(text) if json_string else vault.restore(text)
    assert "".join(out) + restorer.flush() == whole


def test_empty_vault_passes_through() -> None:
    restorer = StreamRestorer(Vault(), json_string=True)
    assert restorer.feed("«EMAIL_1") == "«EMAIL_1" and restorer.flush() == ""


# -- JSON strings (tool-call arguments) -------------------------------------------------------

def test_restore_json_escapes_the_value() -> None:
    vault = Vault()
    vault.placeholder("PERSON", 'Jean "Le Grand" \\ Dupont\n')
    args = '{"to": "«PERSON_1»", "a": "\\u00abPERSON_1\\u00BB", "b": "line\\nPERSON_1"}'
    assert json.loads(vault.restore_json(args)) == {
        "to": 'Jean "Le Grand" \\ Dupont\n', "a": 'Jean "Le Grand" \\ Dupont\n',
        "b": 'line\nJean "Le Grand" \\ Dupont\n'}


def test_restore_json_leaves_an_escaped_backslash_alone() -> None:
    vault = Vault()
    vault.placeholder("IBAN", "X")
    # A literal backslash, then "u00ab…" or "nIBAN_1": neither is a placeholder once decoded.
    args = '["\\\\u00abIBAN_1\\\\u00bb", "\\\\nIBAN_1", "\\\\IBAN_1"]'
    assert json.loads(vault.restore_json(args)) == ["\\u00abIBAN_1\\u00bb", "\\nIBAN_1", "\\X"]


def test_split_inside_the_escape() -> None:
    vault = Vault()
    vault.placeholder("IBAN", 'a"b')
    restorer = StreamRestorer(vault, json_string=True)
    pieces = ['{"iban": "\\', "u0", "0a", "bIBA", "N_1\\u0", "0bb", '"}']
    out = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert orjson.loads(out) == {"iban": 'a"b'}


FORMS = [("«{}»", "{}"), ("{}", "{}"), ("\n{}", "\n{}"), ("x {} y", "x {} y")]


@given(st.lists(st.tuples(st.text(), st.sampled_from(FORMS)), min_size=1, max_size=4),
       st.booleans(), st.lists(st.integers(0, 400)))
def test_streamed_arguments_stay_valid_json(
        values: list[tuple[str, tuple[str, str]]], ascii_only: bool, splits: list[int]) -> None:
    vault = Vault()
    args, expected = {}, {}
    for i, (value, (sent, restored)) in enumerate(values):
        key = vault.placeholder("PERSON", value).strip("«»")
        args[f"k{i}"], expected[f"k{i}"] = sent.format(key), restored.format(value)
    text = json.dumps(args, ensure_ascii=ascii_only)  # ascii_only writes « as \u00ab
    restorer = StreamRestorer(vault, json_string=True)
    out = "".join(restorer.feed(c) for c in chunked(text, [min(s, len(text)) for s in splits]))
    assert orjson.loads(out + restorer.flush()) == expected


# -- session store ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_store_keeps_a_session_vault_until_its_ttl() -> None:
    clock = Clock()
    store = VaultStore(ttl_s=60.0, clock=clock)
    vault = store.get("acme", "s1")
    assert store.get("acme", "s1") is vault
    assert store.get("other", "s1") is not vault  # tenants never share
    clock.now = 59.0
    assert store.get("acme", "s1") is vault  # use refreshes the time-to-live
    clock.now = 118.0
    assert store.get("acme", "s1") is vault
    clock.now = 178.0
    assert store.get("acme", "s1") is not vault
    assert len(store) == 1  # "other" expired too


def test_store_evicts_the_least_recently_used() -> None:
    store = VaultStore(max_sessions=2, clock=Clock())
    a, b = store.get("t", "a"), store.get("t", "b")
    assert store.get("t", "a") is a
    store.get("t", "c")
    assert len(store) == 2
    assert store.get("t", "a") is a
    assert store.get("t", "b") is not b


def test_store_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        VaultStore(max_sessions=0)
    with pytest.raises(ValueError):
        VaultStore(ttl_s=0)
