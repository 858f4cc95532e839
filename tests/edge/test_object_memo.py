"""ObjectMemo: derived once per object, found again by ``id()``, bounded."""

from __future__ import annotations

from edge.auth.identity import Identity
from edge.object_memo import ObjectMemo


def test_object_memo_derives_once_per_object() -> None:
    calls: list[object] = []

    def derive(obj: Identity) -> str:
        calls.append(obj)
        return obj.subject.upper()

    memo: ObjectMemo[Identity, str] = ObjectMemo(derive, max_entries=2)
    a, b, c = (Identity("jwt", name) for name in "abc")
    assert [memo(a), memo(a), memo(b), memo(a)] == ["A", "A", "B", "A"]
    assert calls == [a, b]
    memo(c)  # full: starts afresh
    assert len(memo) == 1
    assert memo(a) == "A" and calls == [a, b, c, a]


def test_object_memo_known_is_the_hit_path_without_deriving() -> None:
    memo: ObjectMemo[Identity, str] = ObjectMemo(lambda obj: obj.subject, max_entries=2)
    a, b, c = (Identity("jwt", name) for name in "abc")
    assert memo.known(id(a)) is None
    memo(a)
    memo(b)
    assert memo.known(id(a)) == "a" and memo.known(id(b)) == "b"
    memo(c)  # full: starts afresh, and known sees the fresh start
    assert memo.known(id(a)) is None and memo.known(id(c)) == "c"
