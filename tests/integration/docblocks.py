#!/usr/bin/env python3
"""The fenced code blocks of Markdown files, for the tests that run them.

  docblocks.py list FILE...       one line per block: FILE, LINE, INFO, SECTION
                                  (tab-separated; LINE is the opening fence's,
                                  INFO the info string, "" when there is none,
                                  SECTION the nearest heading above)
  docblocks.py body FILE LINE     the body of the block opening at LINE

Fences are CommonMark's: three or more backticks or tildes, indented by at
most three spaces; the block ends at a fence of the same character that is
at least as long; body lines lose the opening fence's indentation. A block
left open at the end of the file is an error, so a broken fence cannot hide
commands from the tests.
"""
import re
import sys

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def blocks(path):
    """Yields (line, info, section, body) for each fenced block of PATH."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    section = ""
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            h = HEADING.match(lines[i])
            if h:
                section = h.group(1)
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        if fence[0] == "`" and "`" in info:
            i += 1  # an inline code span, not a fence
            continue
        start = i + 1
        body = []
        i += 1
        while i < len(lines):
            c = FENCE.match(lines[i])
            if c and c.group(2)[0] == fence[0] and len(c.group(2)) >= len(fence) and not c.group(3).strip():
                break
            line = lines[i]
            strip = min(indent, len(line) - len(line.lstrip(" ")))
            body.append(line[strip:])
            i += 1
        else:
            sys.exit(f"{path}:{start}: code block is never closed")
        yield start, info, section, "\n".join(body) + "\n"
        i += 1


def main(argv):
    if len(argv) >= 3 and argv[1] == "list":
        for path in argv[2:]:
            for line, info, section, _ in blocks(path):
                print(f"{path}\t{line}\t{info}\t{section}")
        return 0
    if len(argv) == 4 and argv[1] == "body":
        for line, _, _, body in blocks(argv[2]):
            if line == int(argv[3]):
                sys.stdout.write(body)
                return 0
        sys.exit(f"{argv[2]}:{argv[3]}: no code block opens here")
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
