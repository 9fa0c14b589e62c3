"""Rendered index documents of the view being served, kept so a busy page is rendered once per view.

A view is immutable, so a document rendered from it stays right until the channel switches to another view:
then the whole cache is dropped at the first request that sees the new view id. Bounded in bytes, least
recently used out first, so many distinct keys (every project, every Host a client sent) cannot grow it.

Example::

    pages = RenderCache()
    hit = pages.get(view.view_id, ("mctl-demo", JSON_TYPE))
    if hit is None:
        hit = pages.put(view.view_id, ("mctl-demo", JSON_TYPE), Rendered(body, JSON_TYPE, etag))
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str = ""  # empty: the page carries no ETag


class RenderCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._view_id: str | None = None
        self._docs: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, view_id: str, key: Hashable) -> Rendered | None:
        with self._lock:
            if view_id != self._view_id:
                return None
            found = self._docs.get(key)
            if found is not None:
                self._docs.move_to_end(key)
            return found

    def put(self, view_id: str, key: Hashable, doc: Rendered) -> Rendered:
        """Keep ``doc`` for ``view_id`` (dropping every document of another view); returns it."""
        size = len(doc.body)
        if size > self.max_bytes // 4:  # one huge page must not push every other one out
            return doc
        with self._lock:
            if view_id != self._view_id:
                self._view_id, self._docs, self._size = view_id, OrderedDict(), 0
            old = self._docs.pop(key, None)
            if old is not None:
                self._size -= len(old.body)
            self._docs[key] = doc
            self._size += size
            while self._size > self.max_bytes:
                _, dropped = self._docs.popitem(last=False)
                self._size -= len(dropped.body)
        return doc

    def __len__(self) -> int:
        return len(self._docs)
