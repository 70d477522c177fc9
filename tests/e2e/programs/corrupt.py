#!/usr/bin/env python3
"""corrupt.py IN OUT HOW: writes a damaged copy of a graft patch file.

The file is a 56-byte header (magic, version, manifest size, image size,
SHA-256 of the rest), a JSON manifest, then the image. HOW:
  empty           no bytes at all
  header-only     the 56-byte header only
  truncate-half   the first half of the file
  truncate-1      all but the last byte
  trailing        one byte more
  magic           one bit of the magic flipped
  json            the manifest's opening brace flipped (not JSON any more)
  sha256          one hex digit of the first function's sha256 changed
  address         one digit of the first function's address changed
  external-value  one digit of the first external symbol's value changed
  relocation      one digit of the first relocation's image offset changed
  replacement     the first function's replacement_offset moved by one
Every change flips bits inside the manifest and keeps the sizes as they are
(except the truncations). With HOW+rehash (e.g. sha256+rehash) the file's
SHA-256 is recomputed after the change: the file is then well-formed, and
only graft's checks of the content against the process can catch it. Prints
what it changed.
"""
import hashlib
import json
import re
import struct
import sys

src, dst, how = sys.argv[1:4]
rehash = how.endswith("+rehash")
how = how.removesuffix("+rehash")
data = bytearray(open(src, "rb").read())
msize = struct.unpack_from("<I", data, 12)[0]
HEADER = 56
m0, m1 = HEADER, HEADER + msize
manifest = data[m0:m1].decode()


def flip_digit_at(pos):
    """Changes the decimal/hex digit at manifest offset pos (same length)."""
    c = manifest[pos]
    new = {"9": "8"}.get(c, chr(ord(c) ^ 0x01))
    if c in "abcdef":
        new = "0" if c != "0" else "1"
    data[m0 + pos] = ord(new)
    return f"manifest[{pos}] {c!r} -> {new!r}"


def field_digit(pattern):
    m = re.search(pattern, manifest)
    if not m:
        sys.exit(f"corrupt.py: no match for {pattern} in the manifest")
    return flip_digit_at(m.end(1) - 1)


if how == "empty":
    data, what = b"", "empty file"
elif how == "header-only":
    data, what = data[:HEADER], "header only"
elif how == "truncate-half":
    data, what = data[: len(data) // 2], "first half"
elif how == "truncate-1":
    data, what = data[:-1], "last byte cut"
elif how == "trailing":
    data, what = data + b"\0", "one byte added"
elif how == "magic":
    data[0] ^= 0x20
    what = "magic"
elif how == "json":
    assert manifest[0] == "{"
    what = flip_digit_at(0)
elif how == "sha256":
    what = field_digit(r'"functions":\[\{.*?"sha256":"([0-9a-f]+)')
elif how == "address":
    what = field_digit(r'"functions":\[\{"address":([0-9]+)')
elif how == "external-value":
    what = field_digit(r'"externals":\[\{[^}]*?"value":([0-9]+)')
elif how == "relocation":
    what = field_digit(r'"relocations":\[\[[0-9-]+,[0-9-]+,[0-9-]+,[0-9-]+,([0-9]+)\]')
elif how == "replacement":
    what = field_digit(r'"functions":\[\{.*?"replacement_offset":([0-9]+)')
else:
    sys.exit(f"corrupt.py: unknown change {how}")
if how not in ("empty", "header-only", "truncate-half", "truncate-1", "trailing", "magic"):
    try:
        json.loads(bytes(data[m0:m1]))
        what += " (the manifest is still valid JSON)"
    except ValueError:
        what += " (the manifest is no longer JSON)"
if rehash:
    data[24:HEADER] = hashlib.sha256(bytes(data[HEADER:])).digest()
    what += ", checksum recomputed"
open(dst, "wb").write(bytes(data))
print(what)
