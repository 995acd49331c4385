"""Read a dict's PEP 509 version tag without touching its entries (CPython only, self-checked).

CPython bumps a dict's ``ma_version_tag`` on every change to it. The harness restores builtins
and json.encoder's globals before each test (a program may have patched them), and restoring,
like any Python-level look at the values, writes the reference count of every value: in a
forked child each of those writes is a copy-on-write page fault, ~100 per execution. Reading the
tag instead (8 raw bytes at a fixed offset, through ctypes' C `string_at`) says whether either
dict changed at all, so the restore runs only when it did.

The offset is a layout fact of CPython's ``PyDictObject`` (ob_refcnt, ob_type, ma_used,
ma_version_tag). `reader()` checks it on a probe dict at import, and returns None (restore
always) when the interpreter is not CPython, when ctypes is missing, or when the probe does not
behave exactly as expected.
"""

from __future__ import annotations

import sys

_USED_OFFSET = 2 * 8       # ma_used: a Py_ssize_t after ob_refcnt and ob_type
_VERSION_OFFSET = 3 * 8    # ma_version_tag: a uint64 after ma_used


def reader():
    """A function dict -> bytes (its version tag), or None when the layout cannot be trusted."""
    if sys.implementation.name != "cpython" or sys.maxsize != 2**63 - 1:
        return None
    try:
        import ctypes
        string_at = ctypes._string_at  # the C function behind ctypes.string_at
    except (ImportError, AttributeError):
        return None
    object_id = id

    def version(d: dict) -> bytes:
        return string_at(object_id(d) + _VERSION_OFFSET, 8)

    def used(d: dict) -> int:
        return int.from_bytes(string_at(object_id(d) + _USED_OFFSET, 8), sys.byteorder)

    probe: dict = {}
    tags = [version(probe)]
    if version(probe) != tags[0] or used(probe) != 0:
        return None
    probe["k"] = 1
    tags.append(version(probe))
    if used(probe) != 1:
        return None
    probe["k"] = 2
    tags.append(version(probe))
    del probe["k"]
    tags.append(version(probe))
    probe.update({"k": 3})
    tags.append(version(probe))
    if len(set(tags)) != len(tags) or used(probe) != 1:
        return None  # a change that left the tag alone: not a version tag
    return version
