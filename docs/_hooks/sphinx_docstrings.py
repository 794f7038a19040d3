"""A griffe extension that turns the reST parts of llm_memo's docstrings into Markdown.

The docstrings are Google-style (``Args:``, ``Raises:``, ``Attributes:``) but their prose uses
Sphinx markup, which mkdocstrings would otherwise show literally. Before griffe parses a
docstring, this rewrites, outside Markdown code fences:

==========================================  ==============================================
reST                                        Markdown
==========================================  ==============================================
``:class:`~llm_memo.x.Y```, ``:func:``,     an autorefs cross-reference (``<code>`` title),
``:mod:``, ``:attr:``, ``:data:``,          resolved in the docstring's scope; ``optional``
``:meth:``, ``:exc:``, ``:obj:``            so a private or external target reads as code
``text::`` + an indented block              ``text:`` + a fenced ``python`` block
a simple table (``=====  ====`` rules)      a Markdown table
``.. versionadded:: X``                     a one-line note, "Added in version X."
``.. versionchanged::`` / ``deprecated::``  an admonition with the directive's text
``a, b: text`` in ``Args:``                 one entry per name, each with the text
``#: comment`` lines above an attribute     the attribute's docstring (griffe reads none)
==========================================  ==============================================

Declared in ``mkdocs.yml`` under the python handler's ``extensions:``; it changes only the
text griffe hands to mkdocstrings, never the package.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|mod|attr|data|meth|exc|obj|const):`(~?)([^`<>]+?)`")
_RULE = re.compile(r"^(\s*)(=+(?:\s+=+)+)\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\. (versionadded|versionchanged|deprecated)::\s*(\S+)\s*(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_GROUPED_ARGS = re.compile(r"^(\s+)(\w+(?:, *\w+)+): (.*)$")
_CALLABLE_ROLES = {"func", "meth"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names in ``obj``'s scope, or None where griffe cannot tell."""
    target = target.lstrip(".")
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            resolved = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return _canonical(obj, f"{resolved}.{rest}" if rest else resolved)
    if target.startswith("llm_memo"):
        return _canonical(obj, target)
    return None


def _canonical(obj: griffe.Object, path: str) -> str:
    """Where ``path`` is defined, when it is a re-export, since autorefs knows the rendered path
    and the defining one, not the intermediate re-exports."""
    try:
        found = obj.modules_collection[path]
        return str(found.target_path) if found.is_alias else path
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    role, tilde, target = match.group(1), match.group(2), match.group(3).strip()
    shown = target.rsplit(".", 1)[-1] if tilde else target.lstrip(".")
    if role in _CALLABLE_ROLES and not shown.endswith(")"):
        shown += "()"
    code = f"<code>{html.escape(shown)}</code>"
    path = _resolve(obj, target.removesuffix("()"))
    if path is None:
        return code
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _convert_roles(obj: griffe.Object, line: str) -> str:
    # Roles inside inline code stay literal: split on code spans and convert the rest only.
    parts = re.split(r"(:(?:py:)?[a-z]+:`[^`]+`|``.+?``)", line)
    out = []
    for part in parts:
        role = _ROLE.fullmatch(part)
        out.append(_role(obj, role) if role else part)
    return "".join(out)


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """A simple reST table starting at ``lines[start]`` as Markdown rows, and the index after it."""
    first = _RULE.match(lines[start])
    if first is None:
        return None
    pad = first.group(1)
    rule = lines[start]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]
    rules = [start]
    i = start + 1
    while i < len(lines) and len(rules) < 3:
        if lines[i].strip() == "":
            return None
        if _RULE.match(lines[i]):
            rules.append(i)
            # Two rules close a headerless table unless a third follows after a header row.
            if len(rules) == 2 and not any(
                _RULE.match(lines[j]) for j in range(i + 1, _next_blank(lines, i + 1))
            ):
                break
        i += 1
    if len(rules) < 2:
        return None

    def cells(line: str) -> list[str]:
        out = []
        for n, (a, _b) in enumerate(spans):
            end = spans[n + 1][0] if n + 1 < len(spans) else len(line)
            out.append(line[a:end].strip())
        return out

    def rows(lo: int, hi: int) -> list[list[str]]:
        result: list[list[str]] = []
        for line in lines[lo:hi]:
            row = cells(line)
            if result and row[0] == "":
                result[-1] = [
                    f"{old} {new}".strip() for old, new in zip(result[-1], row, strict=True)
                ]
            else:
                result.append(row)
        return result

    header: list[str]
    if len(rules) == 3:
        header = [" ".join(c) for c in zip(*rows(rules[0] + 1, rules[1]), strict=True)]
        body = rows(rules[1] + 1, rules[2])
        end = rules[2]
    else:
        header = [""] * len(spans)
        body = rows(rules[0] + 1, rules[1])
        end = rules[1]

    def md(row: list[str]) -> str:
        return pad + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    out = [md(header), pad + "|" + "|".join("---" for _ in spans) + "|"]
    out += [md(row) for row in body]
    return out, end + 1


def _next_blank(lines: list[str], start: int) -> int:
    for j in range(start, len(lines)):
        if lines[j].strip() == "":
            return j
    return len(lines)


def _block(lines: list[str], start: int, base: int) -> int:
    """The index after the block of lines indented deeper than ``base`` starting at ``start``."""
    i = start
    while i < len(lines) and (lines[i].strip() == "" or _indent(lines[i]) > base):
        i += 1
    while i > start and lines[i - 1].strip() == "":
        i -= 1
    return i


def convert(obj: griffe.Object, text: str) -> str:
    """The Markdown form of one docstring (see the module docstring for what changes)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    in_fence = False
    section = ""
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        table = _table(lines, i)
        if table is not None:
            rows, i = table
            out += [_convert_roles(obj, row) for row in rows]
            continue
        directive = _DIRECTIVE.match(line)
        if directive is not None:
            pad, kind, version, rest = directive.groups()
            end = _block(lines, i + 1, len(pad))
            body = [rest] if rest else []
            body += [ln.strip() for ln in lines[i + 1 : end]]
            text_body = _convert_roles(obj, " ".join(b for b in body if b))
            if out and out[-1].strip():
                out.append("")
            if kind == "versionadded":
                note = f"*Added in version {version}.*"
                out.append(pad + (f"{note} {text_body}" if text_body else note))
            else:
                title = "Changed in" if kind == "versionchanged" else "Deprecated since"
                level = "note" if kind == "versionchanged" else "warning"
                out.append(f'{pad}!!! {level} "{title} version {version}"')
                out.append("")
                out.append(f"{pad}    {text_body}")
            out.append("")
            i = end
            continue
        grouped = _GROUPED_ARGS.match(line) if section == "args" else None
        if grouped is not None:
            pad, names, first = grouped.groups()
            end = _block(lines, i + 1, len(pad))
            rest = lines[i + 1 : end]
            for name in re.split(r", *", names):
                out.append(_convert_roles(obj, f"{pad}{name}: {first}"))
                out += [_convert_roles(obj, r) for r in rest]
            i = end
            continue
        if re.fullmatch(r"[A-Z][a-z]+:", line.strip()):
            section = "args" if line.strip() in ("Args:", "Arguments:", "Parameters:") else ""
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.endswith(":::"):
            start = i + 1
            while start < len(lines) and lines[start].strip() == "":
                start += 1
            base = _indent(line)
            if start < len(lines) and _indent(lines[start]) > base:
                end = _block(lines, start, base)
                lead = stripped[:-2].rstrip()
                pad = " " * base
                if lead.strip():
                    out.append(_convert_roles(obj, lead + ":"))
                    out.append("")
                out.append(pad + "```python")
                code = lines[start:end]
                cut = min(_indent(c) for c in code if c.strip())
                out += [(pad + c[cut:]) if c.strip() else "" for c in code]
                out.append(pad + "```")
                i = end
                continue
        out.append(_convert_roles(obj, line))
        i += 1
    return "\n".join(out)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if isinstance(member, griffe.Object):
            yield from _objects(member)


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The Sphinx ``#:`` comment block right above an attribute, as its docstring."""
    if not isinstance(obj, griffe.Attribute) or obj.lineno is None:
        return None
    if not isinstance(obj.filepath, Path):  # a namespace package has several
        return None
    try:
        source = obj.lines_collection[obj.filepath]
    except KeyError:
        return None
    comment: list[str] = []
    line = obj.lineno - 2  # the line above the assignment, 0-based
    while line >= 0 and source[line].lstrip().startswith("#:"):
        comment.insert(0, source[line].lstrip()[2:].removeprefix(" "))
        line -= 1
    if not comment:
        return None
    return griffe.Docstring("\n".join(comment), lineno=line + 2, parent=obj)


class SphinxDocstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package once the whole tree is known (for scopes)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        for obj in _objects(pkg):
            if obj.docstring is None:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = convert(obj, obj.docstring.value)
