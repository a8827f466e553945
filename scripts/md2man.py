#!/usr/bin/env python3
"""Turns one of stackback's Markdown reference pages into a man page, so
that the page and the man page never say different things.

Usage: md2man.py INPUT.md OUTPUT TITLE SECTION NAME-LINE VERSION [SYNOPSIS]

It knows the Markdown the docs use: '#' headings (the first one is the
page title and is dropped; '##' become .SH, '###' .SS), paragraphs,
'-' and '1.' lists with indented continuation lines, fenced code blocks,
tables (rendered as tagged paragraphs: the first cell is the tag, the
last cell the text, then the middle cells as "header: value"), `code`, **bold**,
*italic* and [links](target). Anything else it does not recognise is an
error, so the man page cannot silently lose text.
"""
import re
import sys

SPECIALS = {"—": r"\(em", "→": r"\(->", "–": r"\(en", "…": "...", "≥": r"\(>=", "≤": r"\(<="}


class Md2ManError(Exception):
    pass


def escape(text):
    """Roff-escapes plain text (no markup)."""
    text = text.replace("\\", r"\e")
    text = text.replace("-", r"\-")
    for char, roff in SPECIALS.items():
        text = text.replace(char, roff)
    return text


def inline(text):
    """Markdown inline markup to roff font changes."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)]+)\)|\\([|\\`*_\[\]#])")
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        code, bold, italic, link_text, link_target, escaped = m.groups()
        if code is not None:
            out.append(r"\fB" + escape(code) + r"\fR")
        elif bold is not None:
            out.append(r"\fB" + inline(bold) + r"\fR")
        elif italic is not None:
            out.append(r"\fI" + inline(italic) + r"\fR")
        elif link_text is not None:
            out.append(inline(link_text))
            if link_target.startswith(("http://", "https://")):
                out.append(" <" + escape(link_target) + ">")
        else:
            out.append(escape(escaped))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def text_line(line):
    """A line of running text: a leading '.' or "'" must not read as a request."""
    line = line.strip()
    if line.startswith((".", "'")):
        line = r"\&" + line
    return line


def split_row(line):
    cells = re.split(r"(?<!\\)\|", line.strip())
    if cells and cells[0] == "":
        cells = cells[1:]
    if cells and cells[-1] == "":
        cells = cells[:-1]
    return [c.strip() for c in cells]


def convert(lines, title, section, name_line, version, synopsis):
    out = [
        r'.\" Generated from docs/configuration.md by scripts/md2man.py: edit that file.',
        f'.TH {title} {section} "" "stackback {version}" "File Formats"',
        ".SH NAME",
        escape(name_line),
    ]
    if synopsis:
        out += [".SH SYNOPSIS", inline(synopsis)]
    out.append(".SH DESCRIPTION")
    i = 0
    n = len(lines)
    seen_title = False
    while i < n:
        line = lines[i].rstrip("\n")
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#{1,3}) (.+)$", line)
        if heading:
            level = len(heading.group(1))
            if level == 1:
                if seen_title:
                    raise Md2ManError(f"line {i + 1}: a second '#' title")
                seen_title = True
            elif level == 2:
                out.append(".SH " + inline(heading.group(2).upper()))
            else:
                out.append(".SS " + inline(heading.group(2)))
            i += 1
            continue
        if line.startswith("```"):
            i += 1
            out += [".PP", ".RS 4", ".nf"]
            while i < n and not lines[i].startswith("```"):
                code = escape(lines[i].rstrip("\n"))
                out.append(r"\&" + code)
                i += 1
            if i == n:
                raise Md2ManError("unterminated code block")
            out += [".fi", ".RE"]
            i += 1
            continue
        if line.startswith("|"):
            header = split_row(line)
            if i + 1 >= n or not re.match(r"^\|[-| :]+\|$", lines[i + 1].strip()):
                raise Md2ManError(f"line {i + 1}: a table without its --- line")
            i += 2
            while i < n and lines[i].startswith("|"):
                cells = split_row(lines[i])
                if len(cells) != len(header):
                    raise Md2ManError(f"line {i + 1}: {len(cells)} cells, the header has {len(header)}")
                out += [".TP", inline(cells[0])]
                if len(cells) > 1 and cells[-1]:
                    out.append(text_line(inline(cells[-1])))
                facts = [f"{inline(h)}: {inline(c)}" for h, c in zip(header[1:-1], cells[1:-1]) if c]
                if facts:
                    out += [".br", text_line("; ".join(facts))]
                i += 1
            continue
        item = re.match(r"^(-|\d+\.) (.*)$", line)
        if item:
            marker = r"\(bu" if item.group(1) == "-" else item.group(1)
            text = [item.group(2)]
            i += 1
            while i < n and lines[i].startswith("  ") and lines[i].strip():
                text.append(lines[i].strip())
                i += 1
            out += [f'.IP "{marker}" 4', text_line(inline(" ".join(text)))]
            continue
        if line.startswith((" ", "\t", ">", "*", "+", "<")):
            raise Md2ManError(f"line {i + 1}: unsupported Markdown: {line.strip()[:40]}")
        para = []
        while i < n and lines[i].strip() and not re.match(r"^(#{1,3} |```|\||- |\d+\. )", lines[i]):
            para.append(lines[i].strip())
            i += 1
        out += [".PP", text_line(inline(" ".join(para)))]
    if not seen_title:
        raise Md2ManError("no '#' title")
    out += [".SH SEE ALSO", ".BR stackback (1),", ".BR stackbackfs (8),", ".BR stackback\\-tui (1)"]
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (7, 8):
        sys.stderr.write(__doc__)
        return 2
    src, dst, title, section, name_line, version = argv[1:7]
    synopsis = argv[7] if len(argv) == 8 else ""
    try:
        with open(src, encoding="utf-8") as f:
            lines = f.readlines()
        page = convert(lines, title, section, name_line, version, synopsis)
    except UnicodeDecodeError as e:
        sys.stderr.write(f"{src}: not UTF-8 text: {e.reason} at byte {e.start}\n")
        return 1
    except Md2ManError as e:
        sys.stderr.write(f"{src}: {e}\n")
        return 1
    with open(dst, "w", encoding="utf-8") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
