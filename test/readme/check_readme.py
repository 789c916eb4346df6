#!/usr/bin/env python3
"""Checks that the C++ snippets of a README section are the programs the test suite builds.

    check_readme.py README.md "SECTION TITLE" SNIPPET.cpp...

The ```cpp blocks under the section's heading (up to the next heading of the same or a higher
level), in order, must equal the snippet files, in order: README shows what is compiled and run.
"""
import difflib
import re
import sys


def section_blocks(text, title):
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r'#+ ' + re.escape(title) + r'\s*$', line)), None)
    if start is None:
        raise SystemExit(f'README has no section "{title}"')
    level = len(lines[start]) - len(lines[start].lstrip('#'))
    blocks, block = [], None
    for line in lines[start + 1:]:
        if block is None and re.match(r'#{1,%d} ' % level, line):
            break
        if block is None and line.strip() == '```cpp':
            block = []
        elif block is not None and line.strip() == '```':
            blocks.append('\n'.join(block) + '\n')
            block = None
        elif block is not None:
            block.append(line)
    return blocks


def main(argv):
    readme, title, snippets = argv[1], argv[2], argv[3:]
    with open(readme, encoding='utf-8') as f:
        blocks = section_blocks(f.read(), title)
    failures = []
    if len(blocks) != len(snippets):
        failures.append(f'section "{title}" has {len(blocks)} cpp blocks, but {len(snippets)} snippet files are built')
    for block, path in zip(blocks, snippets):
        with open(path, encoding='utf-8') as f:
            code = f.read()
        if block != code:
            diff = difflib.unified_diff(code.splitlines(), block.splitlines(), path, 'README', lineterm='')
            failures.append(f'the README block differs from {path}:\n' + '\n'.join(diff))
    for failure in failures:
        print('FAIL ' + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
