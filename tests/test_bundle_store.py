"""The local bundle store's exclusive create behaves as S3's conditional write does: one writer wins, and a
reader sees no object or the whole object, never an empty one (a losing closer names the lock's holder)."""

from __future__ import annotations

import sys
import threading

import pytest

from common.bundle_store import AlreadyExists, LocalStore


def test_an_exclusive_create_is_never_seen_empty_or_half_written(tmp_path):
    store, data = LocalStore(str(tmp_path)), b'{"closer": "pid 1 on here", "since": "2026-12-02T10:00:00+00:00"}'
    seen: list[bytes] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as possible: a window between create and write shows
    try:
        for n in range(300):
            key, done = f"run-{n}/_LOCK", threading.Event()

            def reader() -> None:
                while not done.is_set():
                    try:
                        seen.append(store.read(key))
                        return
                    except FileNotFoundError:
                        continue

            thread = threading.Thread(target=reader)
            thread.start()
            store.create_exclusive(key, data)
            done.set()
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert seen and all(content == data for content in seen), {c for c in seen if c != data}


def test_a_second_exclusive_create_is_refused_and_leaves_the_first(tmp_path):
    store = LocalStore(str(tmp_path))
    store.create_exclusive("r/_LOCK", b"first")
    with pytest.raises(AlreadyExists):
        store.create_exclusive("r/_LOCK", b"second")
    assert store.read("r/_LOCK") == b"first"
    assert store.list("r") == ["r/_LOCK"], "nothing else is left behind"
