"""The content-kind label of a regular file from its first 4 KiB (spec §4.5).

The ordered magic-byte rules are stdlib only, so the label does not depend on a libmagic version.
The first matching rule wins. Note the prototype behaviour kept for reproducibility (rule 12):
a file larger than 4096 bytes whose text starts with ``{`` or ``[`` is labelled ``json``
without parsing; a small one must parse as JSON, else it falls through to the later rules.
"""

from __future__ import annotations

import json
import re
import struct

HEAD_BYTES = 4096
"""How many leading bytes of a file the rules look at."""

KINDS = (
    "empty",
    "elf_object",
    "elf_executable",
    "elf_shared_lib",
    "elf_other",
    "compressed",
    "archive",
    "image",
    "gettext_catalog",
    "terminfo",
    "font",
    "binary_other",
    "python_source",
    "shell_script",
    "other_script",
    "markup",
    "json",
    "c_source",
    "text",
)
"""Every label :func:`classify` can return (before merging into the 16 data-set classes)."""

MERGED = {"elf_object": "binary_other", "elf_other": "binary_other", "font": "binary_other"}
"""The merge of spec §4.5 that gives the 16 data-set classes."""

_COMPRESSED = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh", b"\x28\xb5\x2f\xfd")
_ARCHIVE = (b"!<arch>\n", b"PK\x03\x04")
_IMAGE = (b"\x89PNG", b"GIF8", b"\xff\xd8\xff")
_GETTEXT = (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde")
_TERMINFO = (b"\x1a\x01", b"\x1e\x02")
_FONT = (b"OTTO", b"\x00\x01\x00\x00", b"wOFF", b"wOF2", b"\x01fcp", b"true")
_SHELL = re.compile(rb"\b(sh|bash|dash|zsh|ksh)\b")
_PYTHON = re.compile(
    rb"^(import \w|from [\w.]+ import |def \w+\(|class \w+[(:]|if __name__ ==)", re.MULTILINE
)
# ``\s`` (newline included) around ``#`` and a word boundary after the directive: the rule of the
# reference build of the debfiles fixture (``# included ...`` in a config file is not C).
_C_PREPROCESSOR = re.compile(rb"^\s*#\s*(include|define|ifndef|ifdef|pragma)\b", re.MULTILINE)


def elf_kind(head: bytes) -> str:
    """Rule 2 for a head starting with ``\\x7fELF``: object, executable (PIE included),
    shared library, or ``elf_other`` (other e_type, 32-bit, truncated headers)."""
    if len(head) < 0x40 or head[4] != 2 or head[5] not in (1, 2):
        return "elf_other"
    order = "<" if head[5] == 1 else ">"
    (e_type,) = struct.unpack_from(order + "H", head, 16)
    if e_type == 1:
        return "elf_object"
    if e_type == 2:
        return "elf_executable"
    if e_type != 3:
        return "elf_other"
    (phoff,) = struct.unpack_from(order + "Q", head, 0x20)
    phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
    if phentsize < 4:
        return "elf_shared_lib"
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 4 > len(head):
            break
        (p_type,) = struct.unpack_from(order + "I", head, at)
        if p_type == 3:  # PT_INTERP: a position-independent executable
            return "elf_executable"
    return "elf_shared_lib"


def classify(head: bytes, size: int) -> str:
    """The kind label of a regular file of ``size`` bytes whose first bytes are ``head``
    (only the first :data:`HEAD_BYTES` are looked at)."""
    head = head[:HEAD_BYTES]
    if size == 0:
        return "empty"
    if head.startswith(b"\x7fELF"):
        return elf_kind(head)
    if head.startswith(_COMPRESSED):
        return "compressed"
    if head.startswith(_ARCHIVE):
        return "archive"
    if head.startswith(_IMAGE):
        return "image"
    if head.startswith(_GETTEXT):
        return "gettext_catalog"
    if head.startswith(_TERMINFO):
        return "terminfo"
    if head.startswith(_FONT):
        return "font"
    if b"\x00" in head:
        return "binary_other"
    if head.startswith(b"#!"):
        first = head.split(b"\n", 1)[0]
        if b"python" in first:
            return "python_source"
        return "shell_script" if _SHELL.search(first) else "other_script"
    stripped = head.lstrip()
    if stripped.startswith(b"<"):
        return "image" if b"<svg" in head else "markup"
    if stripped.startswith((b"{", b"[")):
        if size > HEAD_BYTES:
            return "json"  # prototype behaviour: large files are not parsed (see module doc)
        try:
            json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            return "json"
    if _PYTHON.search(head):
        return "python_source"
    if _C_PREPROCESSOR.search(head):
        return "c_source"
    return "text"


__all__ = ["HEAD_BYTES", "KINDS", "MERGED", "classify", "elf_kind"]
