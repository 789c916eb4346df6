#!/usr/bin/env python3
"""Compile-error test driver, after {fmt}'s test/compile-error-test.

    expect_compile.py SNIPPET.cpp -- COMPILER [FLAGS...]

compiles SNIPPET.cpp with `COMPILER FLAGS... -fsyntax-only` and checks it against the
expectations written in the snippet itself:

    // expect: compiles           the snippet must compile, with zero warnings
                                  (-Wall -Wextra -Wpedantic -Werror); a positive control
    // expect-error: TEXT         the snippet must fail to compile, and TEXT must appear in
                                  the first error line of the compiler's output
    // expect-output: TEXT        TEXT must appear somewhere in the compiler's messages

TEXT may list alternatives, `A || B`, where compilers word a message differently. Only the
messages count, not the source lines the compiler quotes under them, so a word that merely
appears in the snippet does not match. A snippet that fails for an unrelated reason does not
show the expected words and fails the test. clang prints a fixed_string template argument as character codes
({{114, 97, 116, 101, 0}}); they are decoded to {"rate"} before matching, so the same
expectations hold for g++ and clang.
"""
import os
import re
import subprocess
import sys

WARNINGS = ['-Wall', '-Wextra', '-Wpedantic']


def decode_char_codes(text):
    def decode(match):
        codes = [int(c) for c in match.group(1).split(',')]
        return '{"' + ''.join(chr(c) for c in codes if c) + '"}'
    return re.sub(r'\{\{(\d+(?:, \d+)*)\}\}', decode, text)


def is_message(line):
    """A diagnostic line (file:line[:col]: ..., 'file: In ...', 'In file included from ...'),
    as opposed to a quoted source line or caret."""
    return bool(re.match(r'\S[^:\s]*(:\d+)+: ', line) or re.match(r'\S+: In ', line) or line.startswith('In '))


def contains(text, expectation):
    return any(alternative.strip() in text for alternative in expectation.split('||'))


def main(argv):
    if len(argv) < 4 or argv[2] != '--':
        print(__doc__, file=sys.stderr)
        return 2
    snippet, command = argv[1], argv[3:]
    with open(snippet, encoding='utf-8') as f:
        lines = f.read().splitlines()

    def expectations(tag):
        prefix = '// ' + tag + ':'
        return [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]

    must_compile = 'compiles' in expectations('expect')
    first_error_words = expectations('expect-error')
    output_words = expectations('expect-output')
    if must_compile == bool(first_error_words):
        print(f'{snippet}: give either "// expect: compiles" or "// expect-error:" lines', file=sys.stderr)
        return 2

    flags = WARNINGS + (['-Werror'] if must_compile else [])
    full = command + flags + ['-fsyntax-only', '-fdiagnostics-color=never', snippet]
    env = dict(os.environ, LC_ALL='C')  # plain ASCII quotes in the messages
    run = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    output = decode_char_codes(run.stdout.decode('utf-8', errors='replace'))
    print(' '.join(full))
    print(output)
    messages = [line for line in output.splitlines() if is_message(line)]

    failures = []
    if must_compile:
        if run.returncode != 0:
            failures.append('the positive control did not compile cleanly')
    else:
        if run.returncode == 0:
            failures.append('the snippet compiled, but it must not')
        first_error = next((line for line in messages if 'error:' in line), '')
        for word in first_error_words:
            if not contains(first_error, word):
                failures.append(f'the first error line does not contain {word!r}: {first_error!r}')
    for word in output_words:
        if not contains('\n'.join(messages), word):
            failures.append(f'the compiler\'s messages do not contain {word!r}')

    for failure in failures:
        print(f'FAIL {snippet}: {failure}', file=sys.stderr)
    if not failures:
        print(f'PASS {snippet}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
