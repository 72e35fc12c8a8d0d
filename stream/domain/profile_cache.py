"""A bounded map of the most recently used decoded profiles (least recently used go first)."""

from __future__ import annotations

from collections import OrderedDict

from stream.domain.profile import Profile


class ProfileCache:
    """Customer id → the Profile last written for it, at most `size` of them."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Profile] = OrderedDict()

    def get(self, customer_id: str) -> Profile | None:
        profile = self._items.get(customer_id)
        if profile is not None:
            self._items.move_to_end(customer_id)
        return profile

    def put(self, customer_id: str, profile: Profile) -> None:
        self._items[customer_id] = profile
        self._items.move_to_end(customer_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def forget(self, customer_id: str) -> None:
        self._items.pop(customer_id, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
