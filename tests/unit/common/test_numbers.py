"""Numbers from untrusted JSON."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.numbers import finite


class TestFinite:
    @pytest.mark.parametrize(
        "value", [math.nan, math.inf, -math.inf, 10**400, True, False, None, "1", [1], {"a": 1}]
    )
    def test_what_no_bound_can_compare_is_none(self, value):
        """NaN, infinities, ints beyond any float, bools, text and lists are not numbers to bound."""
        assert finite(value) is None

    @given(
        st.one_of(
            st.integers(min_value=-(2**1000), max_value=2**1000),
            st.floats(allow_nan=False, allow_infinity=False),
        )
    )
    def test_every_finite_int_or_float_is_itself_as_a_float(self, value):
        """Any finite int or float comes back equal, as a float."""
        number = finite(value)
        assert isinstance(number, float)
        assert number == float(value)
