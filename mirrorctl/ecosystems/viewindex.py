"""What an ecosystem's server derives from the served view (its parsed index), built once per view.

A server parses the view's artifacts into the index its pages are answered from; an import, promote or
rollback switches the view, and the next request sees it: the index is rebuilt once, for the new view id, while
requests for the same view share it.

Example::

    cache = ViewIndex(content, build_index, empty=_Index("", {}))
    view, index = await cache.aget()      # view is None before the first import
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import anyio

from mirrorctl.ecosystems.base import ServedContent, ServedView


class _ForView(Protocol):
    @property
    def view_id(self) -> str: ...


IndexT = TypeVar("IndexT", bound=_ForView)


class ViewIndex(Generic[IndexT]):
    """The index of the view being served; ``build(view)`` runs once per view id (one build at a time)."""

    def __init__(self, content: ServedContent, build: Callable[[ServedView], IndexT], *, empty: IndexT) -> None:
        self._content = content
        self._build = build
        self._empty = empty  # what get() gives before the first import
        self._index: IndexT | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[ServedView | None, IndexT]:
        view = self._content.current()
        if view is None:
            return None, self._empty
        index = self._index
        if index is not None and index.view_id == view.view_id:
            return view, index
        with self._lock:  # a second request for the same new view waits for the first build
            index = self._index
            if index is None or index.view_id != view.view_id:
                index = self._build(view)
                self._index = index
        return view, index

    async def aget(self) -> tuple[ServedView | None, IndexT]:
        """:meth:`get` for a handler: on the event loop when nothing needs building, else in a worker thread."""
        found = self.peek()
        return found if found is not None else await anyio.to_thread.run_sync(self.get)

    def peek(self) -> tuple[ServedView, IndexT] | None:
        """What :meth:`get` returns when the view and its index are already built (one readlink, no thread)."""
        view = self._content.loaded()
        index = self._index
        if view is None or index is None or index.view_id != view.view_id:
            return None
        return view, index
