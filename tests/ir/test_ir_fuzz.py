"""Fuzzing the parser: any text gives a Module or an IRSyntaxError with a location — nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qmtl.ir.module import Module
from qmtl.ir.parser import IRSyntaxError, parse_module
from qmtl.ir.printer import print_module
from qmtl.ir.verifier import verify
from tests.ir.gen import modules

# Characters the grammar cares about, so random text gets past the first token more often.
GRAMMAR_CHARS = '%@{}()[]<>=:,"\\/ \n-+.eE0123456789abcdefmodulespratinfxyz_'
TOKENS = ["module", "@m", "{", "}", "%a", "%b", "=", "add", "(", ")", ",", ":", "bars", "series", "<", "f64",
          ">", "frame", "loc", '"f.py"', "1", "1.5", "nan", "-inf", "id", "blake3:ab", "output", "@o",
          "[", "]", "true", "none", "//", "\n", '"x\\"', "interval", "period", "99999999999999999999"]


def parse_or_locate(text: str) -> Module | None:
    """Parse; on failure insist on an E001 diagnostic whose location lies inside the text."""
    try:
        return parse_module(text, "fuzz.qir")
    except IRSyntaxError as err:
        diag = err.diagnostic
        assert diag.code == "E001" and diag.loc is not None and diag.loc.file == "fuzz.qir"
        assert 1 <= diag.loc.line <= text.count("\n") + 1
        assert diag.loc.col >= 1
        assert diag.message
        return None


@given(st.text(max_size=200))
def test_arbitrary_text(text):
    parse_or_locate(text)


@given(st.text(alphabet=GRAMMAR_CHARS, max_size=200))
def test_text_over_the_grammar_alphabet(text):
    parse_or_locate(text)


@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup(tokens):
    parse_or_locate(" ".join(tokens))


@st.composite
def mutated_text(draw) -> str:
    text = print_module(draw(modules(with_ids=True)))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        how = draw(st.sampled_from(("delete", "insert", "swap", "duplicate")))
        if how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        elif how == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS + list(GRAMMAR_CHARS))) + text[i:]
        elif how == "swap" and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        else:
            j = draw(st.integers(i, min(len(text), i + 40)))
            text = text[:j] + text[i:j] + text[j:]
    return text


@given(mutated_text())
def test_mutated_valid_text(text):
    module = parse_or_locate(text)
    if module is not None:
        # whatever parsed is a module the verifier can judge and the printer can print
        verify(module)
        assert parse_module(print_module(module)) == module or "nan" in text


def test_deeply_nested_lists_are_a_syntax_error_not_a_crash():
    deep = "module @m { %a = stream_input() {interval = 1, tags = " + "[" * 5000 + "]" * 5000 + "} : bars }"
    assert parse_or_locate(deep) is None
    ok = "module @m { %a = stream_input() {interval = 1, tags = " + "[" * 32 + "]" * 32 + "} : bars }"
    module = parse_or_locate(ok)
    assert module is not None and parse_module(print_module(module)) == module


def test_verifier_survives_absurd_nesting_built_in_python():
    from qmtl.ir.module import Op
    from qmtl.ir.types import BARS
    value: tuple = ()
    for _ in range(5000):
        value = (value,)
    module = Module("m", (Op("a", "stream_input", (), (("interval", 1), ("tags", value)), BARS),))
    assert [d.code for d in verify(module)] == ["E107"]
