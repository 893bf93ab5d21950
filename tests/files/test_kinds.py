"""One test per magic-byte rule of spec §4.5, on crafted bytes."""

from __future__ import annotations

import struct

import pytest

from spikeforge.files.kinds import HEAD_BYTES, KINDS, MERGED, classify, elf_kind


def _elf(e_type: int, interp: bool = False, cls: int = 2, order: str = "<") -> bytes:
    head = bytearray(0x40 + 2 * 56)
    head[:4] = b"\x7fELF"
    head[4] = cls
    head[5] = 1 if order == "<" else 2
    struct.pack_into(order + "H", head, 16, e_type)
    struct.pack_into(order + "Q", head, 0x20, 0x40)
    struct.pack_into(order + "HH", head, 0x36, 56, 2)
    struct.pack_into(order + "I", head, 0x40, 1)  # PT_LOAD
    struct.pack_into(order + "I", head, 0x40 + 56, 3 if interp else 6)  # PT_INTERP or PT_PHDR
    return bytes(head)


def test_rule1_empty() -> None:
    assert classify(b"", 0) == "empty"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (_elf(1), "elf_object"),
        (_elf(2), "elf_executable"),
        (_elf(3, interp=True), "elf_executable"),
        (_elf(3, interp=True, order=">"), "elf_executable"),
        (_elf(3), "elf_shared_lib"),
        (_elf(4), "elf_other"),
        (_elf(2, cls=1), "elf_other"),
        (b"\x7fELF\x02\x01", "elf_other"),
    ],
)
def test_rule2_elf(head: bytes, kind: str) -> None:
    assert classify(head, 10_000) == kind
    assert elf_kind(head) == kind


def test_rule2_elf_program_headers_beyond_head_are_shared_lib() -> None:
    head = bytearray(_elf(3, interp=True))
    struct.pack_into("<Q", head, 0x20, 1 << 20)  # program headers outside the first 4 KiB
    assert classify(bytes(head), 1 << 21) == "elf_shared_lib"


@pytest.mark.parametrize("magic", [b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"BZh9", b"\x28\xb5\x2f\xfd"])
def test_rule3_compressed(magic: bytes) -> None:
    assert classify(magic + b"\x00rest", 100) == "compressed"


@pytest.mark.parametrize("magic", [b"!<arch>\n", b"PK\x03\x04"])
def test_rule4_archive(magic: bytes) -> None:
    assert classify(magic + b"data", 100) == "archive"


@pytest.mark.parametrize("magic", [b"\x89PNG\r\n", b"GIF89a", b"\xff\xd8\xff\xe0"])
def test_rule5_image(magic: bytes) -> None:
    assert classify(magic, 100) == "image"


@pytest.mark.parametrize("magic", [b"\xde\x12\x04\x95", b"\x95\x04\x12\xde"])
def test_rule6_gettext(magic: bytes) -> None:
    assert classify(magic + b"\x00" * 8, 100) == "gettext_catalog"


@pytest.mark.parametrize("magic", [b"\x1a\x01", b"\x1e\x02"])
def test_rule7_terminfo(magic: bytes) -> None:
    assert classify(magic + b"xterm", 100) == "terminfo"


@pytest.mark.parametrize(
    "magic", [b"OTTO", b"\x00\x01\x00\x00", b"wOFF", b"wOF2", b"\x01fcp", b"true"]
)
def test_rule8_font(magic: bytes) -> None:
    assert classify(magic + b"abc", 100) == "font"


def test_rule9_nul_is_binary() -> None:
    assert classify(b"hello\x00world", 11) == "binary_other"
    assert classify(b"#!/bin/sh\n\x00", 11) == "binary_other"  # NUL beats the shebang


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (b"#!/usr/bin/env python3", "python_source"),
        (b"#!/bin/sh", "shell_script"),
        (b"#! /usr/bin/env bash", "shell_script"),
        (b"#!/bin/dash -e", "shell_script"),
        (b"#!/usr/bin/perl", "other_script"),
        (b"#!/usr/bin/shellcheck", "other_script"),  # 'sh' only as a word
    ],
)
def test_rule10_shebang(first: bytes, kind: str) -> None:
    head = first + b"\necho python\n"
    assert classify(head, len(head)) == kind


def test_rule11_markup_and_svg() -> None:
    assert classify(b"  \n<html><body/></html>", 24) == "markup"
    assert classify(b'<?xml version="1.0"?>\n<svg xmlns="x"/>', 40) == "image"


def test_rule12_json() -> None:
    assert classify(b' {"a": [1, 2]}', 14) == "json"
    assert classify(b"[1, 2, 3]", 9) == "json"
    # a small file that does not parse falls through
    assert classify(b"[section]\nkey = value\n", 22) == "text"
    # larger than 4 KiB: labelled json without parsing (prototype behaviour)
    assert classify(b"{ not json at all", HEAD_BYTES + 1) == "json"


@pytest.mark.parametrize(
    "line",
    [
        b"import os",
        b"from a.b import c",
        b"def f(x):",
        b"class X(object):",
        b"class X:",
        b"if __name__ == '__main__':",
    ],
)
def test_rule13_python(line: bytes) -> None:
    head = b"# comment\n" + line + b"\n"
    assert classify(head, len(head)) == "python_source"


@pytest.mark.parametrize(
    "line", [b"#include <stdio.h>", b"  #  define X 1", b"#ifndef A", b"#pragma once"]
)
def test_rule14_c_preprocessor(line: bytes) -> None:
    head = b"/* c */\n" + line + b"\n"
    assert classify(head, len(head)) == "c_source"


@pytest.mark.parametrize(
    "line", [b"# included from the main file", b"# defined by the admin", b"#includes"]
)
def test_rule14_needs_a_whole_directive_word(line: bytes) -> None:
    head = b"# config\n" + line + b"\n"
    assert classify(head, len(head)) == "text"


def test_rule14_whitespace_may_include_a_newline() -> None:
    head = b"set(A 1)\n#\ninclude(CTest)\n"  # cmake: the reference build calls this C
    assert classify(head, len(head)) == "c_source"


def test_rule15_text() -> None:
    assert classify(b"Just some words.\n", 17) == "text"


def test_only_first_4k_looked_at() -> None:
    head = b"a" * HEAD_BYTES + b"\x00"
    assert classify(head, len(head)) == "text"


def test_kinds_and_merge_give_16_classes() -> None:
    assert len({MERGED.get(k, k) for k in KINDS}) == 16
