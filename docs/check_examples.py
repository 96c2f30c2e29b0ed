#!/usr/bin/env python3
"""Keeps the code samples of the docs identical to compiled programs.

A sample in a Markdown page is a fenced block right after a marker line:

    <!-- sample: docs/examples/api_chan.cpp#unbuffered -->
    ```cpp
    ...
    ```

and its text must equal the region of that file between the lines
`// [unbuffered]` and `// [/unbuffered]` (dedented). The programs in
docs/examples are built and run by meson (docs/meson.build), so a sample
that compiles no more, or does something else, fails the build or a test.

Usage: check_examples.py <source root>          check; exit 1 on a mismatch
       check_examples.py <source root> --fix    rewrite the pages' copies
"""

import os
import re
import sys
import textwrap

MARKER = re.compile(r'^<!-- sample: (\S+?)#(\S+) -->$')
BEGIN = re.compile(r'^\s*// \[([\w-]+)\]\s*$')
END = re.compile(r'^\s*// \[/([\w-]+)\]\s*$')


def regions(path):
    out, open_ = {}, {}
    with open(path) as f:
        for n, line in enumerate(f.read().splitlines()):
            m = BEGIN.match(line)
            if m:
                open_[m.group(1)] = []
                continue
            m = END.match(line)
            if m:
                name = m.group(1)
                if name not in open_:
                    raise SystemExit('%s:%d: [/%s] without [%s]' % (path, n + 1, name, name))
                out[name] = textwrap.dedent('\n'.join(open_.pop(name))).strip('\n')
                continue
            for body in open_.values():
                body.append(line)
    if open_:
        raise SystemExit('%s: unclosed region(s) %s' % (path, ', '.join(open_)))
    return out


def pages(root):
    for base in (os.path.join(root, 'docs'), root):
        for dirpath, dirs, files in os.walk(base):
            if base == root:
                dirs[:] = []  # the top level only: README.md
            for f in sorted(files):
                if f.endswith('.md'):
                    yield os.path.join(dirpath, f)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    fix = '--fix' in sys.argv[2:]
    cache, problems, count = {}, [], 0
    for page in pages(root):
        with open(page) as f:
            lines = f.read().split('\n')
        changed = False
        i = 0
        while i < len(lines):
            m = MARKER.match(lines[i].strip())
            if not m:
                i += 1
                continue
            src, name = m.group(1), m.group(2)
            where = '%s:%d' % (os.path.relpath(page, root), i + 1)
            path = os.path.join(root, src)
            if path not in cache:
                if not os.path.exists(path):
                    problems.append('%s: %s does not exist' % (where, src))
                    i += 1
                    continue
                cache[path] = regions(path)
            if name not in cache[path]:
                problems.append('%s: %s has no region [%s]' % (where, src, name))
                i += 1
                continue
            want = cache[path][name].split('\n')
            if i + 1 >= len(lines) or not lines[i + 1].startswith('```'):
                problems.append('%s: the marker must be followed by a ``` block' % where)
                i += 1
                continue
            end = i + 2
            while end < len(lines) and not lines[end].startswith('```'):
                end += 1
            count += 1
            if lines[i + 2:end] != want:
                if fix:
                    lines[i + 2:end] = want
                    end = i + 2 + len(want)
                    changed = True
                else:
                    problems.append('%s: differs from %s#%s (run docs/check_examples.py . --fix)'
                                    % (where, src, name))
            i = end + 1
        if changed:
            with open(page, 'w') as f:
                f.write('\n'.join(lines))
            print('rewrote samples in %s' % os.path.relpath(page, root))
    for p in problems:
        print(p)
    print('%d samples checked, %d problem(s)' % (count, len(problems)))
    return 1 if problems and not fix else 0


if __name__ == '__main__':
    sys.exit(main())
