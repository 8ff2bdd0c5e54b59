"""统一社会信用代码 check characters (GB 32100-2015), with python-stdnum as the oracle."""
from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import uscc as oracle

from screening import uscc

pytestmark = pytest.mark.unit

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)
# python-stdnum additionally requires the first 8 characters (authority, type, region) to be digits
digit_bodies = st.tuples(st.text(alphabet="0123456789", min_size=8, max_size=8),
                         st.text(alphabet=ALPHABET, min_size=9, max_size=9)).map("".join)


def test_alphabet_matches_the_standard():
    assert uscc.ALPHABET == ALPHABET == oracle._alphabet
    assert not set("IOSVZ") & set(uscc.ALPHABET)
    assert uscc.WEIGHTS == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


@pytest.mark.parametrize("code, valid", [
    ("91330381145618741G", True),
    ("91110000600037341L", True),  # python-stdnum's own example
    ("91350100M000100Y43", True),
    ("91350100M0001TGQXM", False),
    ("91330381145618741H", False),
    ("91330381145618741", False),  # 17 characters
    ("91330381145618741GG", False),  # 19 characters
    ("9133038114561874IG", False),  # I is not in the alphabet
    ("9133038114561874OG", False),  # O neither
    ("", False),
])
def test_known_examples(code, valid):
    assert uscc.is_valid(code) is valid
    assert oracle.is_valid(code) is valid


def test_is_valid_ignores_case_and_surrounding_whitespace():
    assert uscc.is_valid("  91330381145618741g ")
    assert uscc.is_valid("91350100m000100y43")


def test_check_char_of_known_codes():
    for code in ("91330381145618741G", "91110000600037341L", "91350100M000100Y43"):
        assert uscc.check_char(code[:17]) == code[17] == oracle.calc_check_digit(code[:17])
    assert uscc.check_char("91350100M0001TGQX") != "M"


def test_check_char_needs_exactly_17_characters():
    with pytest.raises(ValueError):
        uscc.check_char("9133038114561874")
    with pytest.raises(ValueError):
        uscc.check_char("91330381145618741G")


def test_expected_check_chars_vectorized_matches_oracle():
    codes = ["91330381145618741G", "91350100M0001TGQXM", "91110000600037341L", "000000000000000000", "YYYYYYYYYYYYYYYYYY"]
    got = uscc.expected_check_chars(pl.Series("uscc", codes))
    assert got.dtype == pl.String
    assert got.name == "uscc"
    assert got.to_list() == [oracle.calc_check_digit(c[:17]) for c in codes]


def test_expected_check_chars_empty():
    got = uscc.expected_check_chars(pl.Series("uscc", [], dtype=pl.String))
    assert got.len() == 0 and got.dtype == pl.String


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_check_char_agrees_with_stdnum(body):
    expected = oracle.calc_check_digit(body)
    assert uscc.check_char(body) == expected
    assert uscc.is_valid(body + expected)
    for wrong in ALPHABET.replace(expected, "")[:5]:
        assert not uscc.is_valid(body + wrong)


@settings(max_examples=300, deadline=None)
@given(digit_bodies, st.sampled_from(ALPHABET))
def test_is_valid_agrees_with_stdnum(body, last):
    code = body + last
    assert uscc.is_valid(code) == oracle.is_valid(code)
    assert uscc.is_valid(code.lower()) == oracle.is_valid(code)


@settings(max_examples=300, deadline=None)
@given(st.lists(bodies, min_size=1, max_size=40), st.lists(st.sampled_from(ALPHABET), min_size=40, max_size=40))
def test_vectorized_agrees_with_stdnum(body_list, lasts):
    codes = [b + c for b, c in zip(body_list, lasts)]
    series = pl.Series("uscc", codes)
    expected = [oracle.calc_check_digit(b) for b in body_list]
    assert uscc.expected_check_chars(series).to_list() == expected
    # and the per-code check agrees
    assert [uscc.is_valid(c) for c in codes] == [c[17] == e for c, e in zip(codes, expected)]


@settings(max_examples=300, deadline=None)
@given(digit_bodies, st.sampled_from(ALPHABET))
def test_problem_agrees_with_stdnum_and_names_the_expected_character(body, last):
    code = body + last
    reason = uscc.problem(code)
    assert (reason is None) == oracle.is_valid(code)
    if reason is not None:
        assert reason == f"统一社会信用代码校验位错误（按GB 32100-2015应为“{oracle.calc_check_digit(body)}”）"


@pytest.mark.parametrize("code", ["91330382O00000000X", "9133038200000000", "91330382000000000a", ""])
def test_problem_of_a_malformed_code_is_the_format_reason(code):
    assert uscc.problem(code) == uscc.FORMAT_REASON
