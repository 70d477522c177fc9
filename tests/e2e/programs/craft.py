#!/usr/bin/env python3
"""craft.py IN OUT HOW: writes a deliberately malicious copy of a graft patch.

Unlike corrupt.py (damage), each change here is what an attacker would write:
the manifest is edited as JSON, and the header's sizes and SHA-256 are
recomputed, so the file is well-formed and only graft's checks of the
content can refuse it. HOW names the lie (see CHANGES). Prints it.
"""
import hashlib
import json
import struct
import sys

src, dst, how = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
version, msize, isize = struct.unpack_from("<IIQ", data, 8)
HEADER = 56
manifest = json.loads(data[HEADER:HEADER + msize])
image = bytes(data[HEADER + msize:HEADER + msize + isize])
f0 = manifest["functions"][0]
layout = manifest["layout"]


def first_reloc(external):
    for r in manifest["relocations"]:
        if (r[3] >= 0) == external:
            return r
    sys.exit(f"craft.py: no {'external' if external else 'internal'} relocation")


CHANGES = {
    "replacement-out-of-code": lambda: f0.update(replacement_offset=layout["code_size"] + 4096),
    "replacement-overruns-code": lambda: f0.update(replacement_size=layout["code_size"] + 1),
    "relocation-outside-image": lambda: first_reloc(True).__setitem__(0, len(image) + 64),
    "relocation-target-outside": lambda: first_reloc(True).__setitem__(3, -1) or
        first_reloc(False).__setitem__(4, 1 << 40),
    "relocation-unknown-external": lambda: first_reloc(True).__setitem__(3, 4096),
    "relocation-unknown-type": lambda: first_reloc(True).__setitem__(1, 0x7fffffff),
    "relocation-type-truncated": lambda: first_reloc(True).__setitem__(1, (1 << 32) + 2),
    "huge-bss": lambda: layout.update(bss_size=1 << 40),
    "parts-overlap": lambda: layout.update(rodata_offset=0),
    "function-too-short": lambda: f0.update(size=3),
    "function-huge": lambda: f0.update(size=1 << 40),
    "functions-overlap": lambda: manifest["functions"].append(dict(f0, symbol="other", address=f0["address"] + 2)),
    "size-negative": lambda: f0.update(size=-1),
    "address-string": lambda: f0.update(address=str(f0["address"])),
    "address-float": lambda: f0.update(address=f0["address"] + 0.5),
    "target-not-object": lambda: manifest.update(target="x"),
    "name-escape": lambda: manifest.update(name="fix\x1b]0;pwned\x07"),
    "no-functions": lambda: manifest.update(functions=[]),
}
HEADER_CHANGES = {"huge-image-header", "huge-manifest-header"}

if how not in CHANGES and how not in HEADER_CHANGES:
    sys.exit(f"craft.py: unknown change {how}; one of {', '.join(list(CHANGES) + sorted(HEADER_CHANGES))}")
if how in CHANGES:
    CHANGES[how]()
m = json.dumps(manifest, separators=(",", ":")).encode()
body = m + image
out = bytearray(data[:8]) + struct.pack("<IIQ", version, len(m), len(image)) + hashlib.sha256(body).digest() + body
if how == "huge-image-header":
    struct.pack_into("<Q", out, 16, 1 << 40)
elif how == "huge-manifest-header":
    struct.pack_into("<I", out, 12, 0xFFFFFFFF)
open(dst, "wb").write(bytes(out))
print(how)
