"""The dict version tag that lets the harness skip restoring unpatched builtins (no service)."""

import builtins

from sandbox_service import dict_version, harness


def test_the_version_tag_moves_on_every_change_and_only_then():
    version = dict_version.reader()
    assert version is not None  # CPython 3.11 here: the layout check passes
    d = {"a": 1}
    first = version(d)
    assert version(d) == first and d["a"] == 1 and list(d.items()) == [("a", 1)]
    assert version(d) == first  # reads, lookups and iteration leave it alone
    seen = {first}
    for change in (lambda: d.__setitem__("a", 2), lambda: d.__setitem__("b", 3),
                   lambda: d.pop("b"), lambda: d.update(a=4), lambda: d.setdefault("c", 5),
                   lambda: d.clear()):
        change()
        assert version(d) not in seen
        seen.add(version(d))


def test_restore_is_skipped_while_builtins_are_untouched_and_undoes_a_patch(monkeypatch):
    updates = []
    real_update = harness._dict_update
    monkeypatch.setattr(harness, "_dict_update", lambda d, snap: updates.append(d) or real_update(d, snap))
    harness.snapshot_runtime()
    harness._restore_runtime()
    assert updates == []
    original_abs, saved = builtins.abs, dict(builtins.__dict__)
    try:
        builtins.abs = lambda x: 0
        harness._restore_runtime()
        assert builtins.abs is original_abs and len(updates) == 2
        harness._restore_runtime()  # clean again: nothing more to do
        assert len(updates) == 2
        del builtins.sorted
        harness._restore_runtime()
        assert builtins.sorted([2, 1]) == [1, 2]
    finally:
        builtins.__dict__.update(saved)
