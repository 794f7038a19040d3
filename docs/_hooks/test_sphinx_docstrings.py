"""Tests of the docstring rewriting (run by scripts/docs: ``pytest docs/_hooks``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import griffe
import pytest
from sphinx_docstrings import SphinxDocstrings, convert

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pkg() -> griffe.Module:
    module = griffe.load("llm_memo", search_paths=[str(ROOT)])
    assert isinstance(module, griffe.Module)
    return module


def rewrite(pkg: griffe.Module, path: str, text: str) -> str:
    obj = pkg[path.removeprefix("llm_memo.")] if path != "llm_memo" else pkg
    return convert(obj, textwrap.dedent(text).strip("\n"))


def test_roles_resolve_in_the_docstrings_scope(pkg: griffe.Module) -> None:
    out = rewrite(pkg, "llm_memo", "returns a :class:`CachedFunction`; see :func:`configure`.")
    assert (
        '<autoref identifier="llm_memo._decorator.CachedFunction" optional>'
        "<code>CachedFunction</code></autoref>"
    ) in out
    assert (
        '<autoref identifier="llm_memo.config.configure" optional><code>configure()</code>' in out
    )


def test_tilde_shows_the_last_component_and_unknown_targets_read_as_code(
    pkg: griffe.Module,
) -> None:
    out = rewrite(
        pkg, "llm_memo.config", ":class:`~llm_memo.errors.BackendError` :mod:`nowhere.thing`"
    )
    assert 'identifier="llm_memo.errors.BackendError" optional><code>BackendError</code>' in out
    assert out.endswith(" <code>nowhere.thing</code>")


def test_roles_inside_inline_code_and_fences_stay_literal(pkg: griffe.Module) -> None:
    text = """
    ``:class:`X``` stays.

    ```python
    x = ":func:`f`"
    ```
    """
    out = rewrite(pkg, "llm_memo", text)
    assert "``:class:`X```" in out
    assert 'x = ":func:`f`"' in out
    assert "autoref" not in out


def test_literal_block_becomes_a_python_fence(pkg: griffe.Module) -> None:
    text = """
    Summary.

    Example::

        ask("hi")
            nested()

    After.
    """
    assert rewrite(pkg, "llm_memo", text).split("\n") == [
        "Summary.",
        "",
        "Example:",
        "",
        "```python",
        'ask("hi")',
        "    nested()",
        "```",
        "",
        "After.",
    ]


def test_simple_table_with_header_and_continuation_rows(pkg: griffe.Module) -> None:
    text = """
    ======  =====  ==========
    name    unit   what
    ======  =====  ==========
    ``a``   s      first line
                   goes on | here
    ``b``   {x}    other
    ======  =====  ==========
    """
    assert rewrite(pkg, "llm_memo", text).split("\n") == [
        "| name | unit | what |",
        "|---|---|---|",
        "| ``a`` | s | first line goes on \\| here |",
        "| ``b`` | {x} | other |",
    ]


def test_headerless_table_gets_an_empty_header(pkg: griffe.Module) -> None:
    text = """
    Before:

    ====  ======
    ``x``   one
    ``y``   two
    ====  ======
    """
    assert rewrite(pkg, "llm_memo", text).split("\n")[2:] == [
        "|  |  |",
        "|---|---|",
        "| ``x`` | one |",
        "| ``y`` | two |",
    ]


def test_version_directives(pkg: griffe.Module) -> None:
    text = """
    Text.

    .. versionadded:: 0.2.0
    .. versionchanged:: 0.3.0
       ``grace`` is new.
    .. deprecated:: 0.2.0
       Use :func:`configure`.
    """
    out = rewrite(pkg, "llm_memo", text)
    # Each directive is its own block, so consecutive ones never run into one paragraph.
    assert out.split("\n")[:9] == [
        "Text.",
        "",
        "*Added in version 0.2.0.*",
        "",
        '!!! note "Changed in version 0.3.0"',
        "",
        "    ``grace`` is new.",
        "",
        '!!! warning "Deprecated since version 0.2.0"',
    ]
    assert out.split("\n")[10].startswith("    Use <autoref")


def test_grouped_arguments_become_one_entry_each(pkg: griffe.Module) -> None:
    text = """
    Compare.

    Args:
        a, b: calls to compare,
            on two lines.
    """
    assert rewrite(pkg, "llm_memo", text).split("\n")[3:] == [
        "    a: calls to compare,",
        "        on two lines.",
        "    b: calls to compare,",
        "        on two lines.",
    ]


@pytest.fixture(scope="module")
def loaded() -> griffe.Module:
    module = griffe.load(
        "llm_memo",
        search_paths=[str(ROOT)],
        extensions=griffe.load_extensions(SphinxDocstrings),
    )
    assert isinstance(module, griffe.Module)
    return module


def test_comment_above_an_attribute_becomes_its_docstring(loaded: griffe.Module) -> None:
    docstring = loaded["keys.builder.DEFAULT_IGNORE"].docstring
    assert docstring is not None
    assert docstring.value.startswith("Parameter names never part of a key")
    assert "#:" not in docstring.value


def test_no_sphinx_markup_survives_in_the_package(loaded: griffe.Module) -> None:
    """After the extension ran, no public docstring still holds a role, directive or table rule."""
    left = []
    stack: list[griffe.Object] = [loaded]
    while stack:
        obj = stack.pop()
        stack += [m for m in obj.members.values() if isinstance(m, griffe.Object)]
        text = obj.docstring.value if obj.docstring else ""
        fenced = False
        for line in text.split("\n"):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and (
                ":class:`" in line
                or ":func:`" in line
                or ".. version" in line
                or line.strip().startswith("====")
            ):
                left.append(f"{obj.path}: {line.strip()}")
    assert left == []


def test_the_site_build_fails_on_a_page_missing_from_nav_or_a_broken_link() -> None:
    """What makes ``mkdocs build --strict`` a check: every validation is a warning, strict is on.

    (Checked by hand once: a stray docs/stray.md, a link to a missing page and one to a missing
    anchor each abort the build.)
    """
    import yaml  # type: ignore[import-untyped]  # mkdocs depends on PyYAML; no stubs installed

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    assert config["validation"]["nav"]["omitted_files"] == "warn"
    assert config["validation"]["nav"]["not_found"] == "warn"
    assert config["validation"]["links"]["not_found"] == "warn"
    assert config["validation"]["links"]["anchors"] == "warn"
    # --quiet drops warnings before strict mode counts them: the build would pass.
    script = (ROOT / "scripts" / "docs").read_text().split("\n")
    commands = [line for line in script if not line.lstrip().startswith("#")]
    assert not [
        line for line in commands if "--quiet" in line or (" -q " in line and "mkdocs" in line)
    ]
