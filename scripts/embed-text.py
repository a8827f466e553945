#!/usr/bin/env python3
"""Turns a text file into a C source defining one string constant.

Usage: embed-text.py INPUT OUTPUT SYMBOL

Used by meson so that a shipped file (config/config.ini.example) and the
copy compiled into the programs can never differ.
"""
import sys


def c_literal(line: str) -> str:
    out = []
    for ch in line:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or code > 0x7E:
            # Octal escapes of the UTF-8 bytes keep the C file ASCII;
            # three digits so a following digit is never absorbed.
            out.extend("\\%03o" % b for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: embed-text.py INPUT OUTPUT SYMBOL", file=sys.stderr)
        return 2
    src, dst, symbol = sys.argv[1:]
    with open(src, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    with open(dst, "w", encoding="ascii") as f:
        f.write(f"/* Generated from {src.rsplit('/', 1)[-1]} by scripts/embed-text.py: do not edit. */\n")
        f.write(f"extern const char {symbol}[];\n")
        f.write(f"const char {symbol}[] =\n")
        if not lines:
            f.write('\t""')
        f.write("\n".join("\t" + c_literal(line) for line in lines))
        f.write(";\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
