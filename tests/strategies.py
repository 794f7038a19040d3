"""Hypothesis strategies for chat requests and JSON-like values (used by the key tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Scalars whose key forms must be canonical: ints, finite floats, bools, None, text.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)

json_like: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)

roles = st.sampled_from(["system", "user", "assistant"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(min_size=0, max_size=60)}),
    min_size=1,
    max_size=4,
)
models = st.sampled_from(["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "o3-mini"])
temperatures = st.sampled_from([0, 0.2, 0.7, 1, 1.5, 2])
params = st.dictionaries(
    st.sampled_from(["max_tokens", "top_p", "seed", "stop", "presence_penalty"]),
    st.one_of(st.integers(0, 4096), st.floats(0, 1, allow_nan=False), st.text(max_size=5)),
    max_size=3,
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A chat request: model, messages, temperature and a few extra parameters."""
    return {
        "model": draw(models),
        "messages": draw(messages),
        "temperature": draw(temperatures),
        **draw(params),
    }


def reorder(value: Any, rnd: Any) -> Any:
    """The same value with every mapping's key order shuffled and lists turned to tuples
    at random (equal meaning, different Python form)."""
    if isinstance(value, dict):
        items = [(k, reorder(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        items = [reorder(v, rnd) for v in value]
        return tuple(items) if rnd.random() < 0.5 else items
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value) if rnd.random() < 0.5 else value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return float(value) if rnd.random() < 0.5 else value
    return value
