"""Hypothesis strategies both fuzz modules draw from: header text and arbitrary JSON values."""

from __future__ import annotations

from hypothesis import strategies as st

# What an HTTP header can carry (latin-1, no line breaks or NUL: those never reach a WSGI app).
LATIN1 = st.characters(max_codepoint=255, blacklist_characters="\r\n\x00")
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
