"""The pure half of per-item caching: which calls are batches, their items, and token shares.

:func:`batching_for` decides once, at decoration, whether a function caches a list parameter
item by item (an SDK's embedding function, or ``per_item="input"``) and returns its
:class:`Batching`; per call, :meth:`Batching.request` finds the items (or says the call is
cached whole). :func:`token_shares` splits a batch's usage over its items by text length.
No I/O here: the runners are ``_async.py`` and its generated twin.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .. import sdks
from ..errors import ConfigurationError
from ..sdks import ItemBatch

__all__ = ["PLAIN_LIST", "Batching", "Request", "batching_for", "token_shares"]


# -- a function of yours: a list in, a list out -------------------------------------------------


def _plain_items(value: Any) -> list[Any] | None:
    if isinstance(value, (list, tuple)) and value:
        return list(value)
    return None


def _plain_split(result: Any, shares: Sequence[int]) -> list[Any] | None:
    if isinstance(result, (list, tuple)) and len(result) == len(shares):
        return [[answer] for answer in result]
    return None


def _plain_merge(parts: Sequence[Any], sent: Any) -> Any:
    return [part[0] for part in parts]


def plain_list(param: str) -> ItemBatch:
    """A function of yours whose ``param`` is a list (or tuple) and whose result is a list with
    one answer per item, in order: each item's entry is ``[answer]`` (what a one-item call
    returns), and a batch returns a list."""
    return ItemBatch(param=param, items=_plain_items, split=_plain_split, merge=_plain_merge)


PLAIN_LIST = plain_list("input")


# -- one function's batching --------------------------------------------------------------------


class Request:
    """One batch call: its items and how to rebuild the call with other items."""

    __slots__ = ("_args", "_kwargs", "_where", "items", "param")

    def __init__(
        self,
        items: list[Any],
        param: str,
        where: int | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.items = items
        #: The name of the list parameter.
        self.param = param
        self._where = where  # index in args, or None when passed by keyword
        self._args = args
        self._kwargs = kwargs

    def with_items(self, items: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with the list replaced by ``items``."""
        where = self._where
        if where is None:
            return self._args, {**self._kwargs, self.param: items}
        return (*self._args[:where], items, *self._args[where + 1 :]), self._kwargs


class Batching:
    """How one decorated function's calls are cached item by item (decided at decoration).

    Args:
        fn: the decorated callable.
        shape: the :class:`~llm_memo.sdks.ItemBatch` of its list parameter.
    """

    __slots__ = ("_position", "_takes_self", "shape")

    def __init__(self, fn: Callable[..., Any], shape: ItemBatch) -> None:
        self.shape = shape
        self._position: int | None = None
        self._takes_self = False
        params = _parameters(fn)
        if params is None:
            return
        self._takes_self = bool(params) and params[0].name in ("self", "cls")
        for i, p in enumerate(params):
            if p.name == shape.param and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                self._position = i

    def request(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Request | None:
        """The call's items, or ``None`` when it is cached whole (no list of items given)."""
        param = self.shape.param
        where: int | None = None
        if param in kwargs:
            value = kwargs[param]
        elif self._position is not None:
            # wrapt passes a method's instance apart from args; the signature counts it.
            where = self._position - (1 if self._takes_self and instance is not None else 0)
            if not 0 <= where < len(args):
                return None
            value = args[where]
        else:
            return None
        items = self.shape.items(value)
        if not items:
            return None
        return Request(items, param, where, args, kwargs)


def _parameters(fn: Any) -> list[inspect.Parameter] | None:
    target: Any = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    try:
        return list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None


def batching_for(fn: Callable[..., Any], option: Any, generator: bool) -> Batching | None:
    """The :class:`Batching` of a function being decorated, or ``None`` (cached whole).

    ``option`` is the decorator's ``per_item=``: unset (``None``: an SDK's embedding function
    batches its ``input``, nothing else does), ``False`` (never), or a parameter name.

    Raises:
        ConfigurationError: ``per_item`` is not a name or ``False``, names a parameter the
            function does not have, differs from the SDK's own list parameter, or is given for
            a generator function.
    """
    if option is False:
        return None
    if option is not None and (not isinstance(option, str) or not option):
        raise ConfigurationError(
            f"per_item= takes the name of the list parameter (per_item='input') or False, "
            f"got {option!r}"
        )
    shape = sdks.per_item_for(fn)
    if shape is not None and sdks.client_for(fn)[1]:
        shape = None  # with_raw_response & co return no embedding response to split
    if option is None:
        return None if shape is None else Batching(fn, shape)
    if generator:
        raise ConfigurationError(
            "per_item= needs a function returning one answer per item, not a generator"
        )
    if shape is not None:
        if shape.param != option:
            raise ConfigurationError(
                f"per_item={option!r}: this SDK function caches the items of "
                f"{shape.param!r}, not {option!r}"
            )
        return Batching(fn, shape)
    params = _parameters(fn)
    if (
        params is not None
        and not any(p.kind is p.VAR_KEYWORD for p in params)
        and option not in {p.name for p in params}
    ):
        raise ConfigurationError(f"per_item={option!r}: the function has no such parameter")
    return Batching(fn, plain_list(option))


# -- usage split ------------------------------------------------------------------------------


def item_length(item: Any) -> int:
    """An item's weight in the usage split: a text's characters, a token array's tokens."""
    if isinstance(item, (str, list, tuple)):
        return len(item)
    return 1


def token_shares(total: int, items: Sequence[Any]) -> list[int]:
    """``total`` tokens split over ``items`` in proportion to :func:`item_length` (largest
    remainders, so the shares add up to ``total``); an estimate: providers report usage per
    batch, not per input."""
    weights = [item_length(item) for item in items]
    weight = sum(weights)
    if weight == 0:
        weights, weight = [1] * len(items), len(items)
    if total <= 0 or not items:
        return [0] * len(items)
    exact = [total * w / weight for w in weights]
    shares = [int(x) for x in exact]
    left = total - sum(shares)
    by_remainder = sorted(range(len(items)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares
