#!/usr/bin/env python3
"""Runs docs/examples/schedtrace with GORT_DEBUG=schedtrace=50 and checks
that every line it prints has the format docs/debugging.md describes, that
the run queues were seen busy, and that the Ps were seen idle at the end.
Usage: check_schedtrace.py <schedtrace executable>"""
import os
import re
import subprocess
import sys

LINE = re.compile(r'^SCHED (\d+)ms: gomaxprocs=(\d+) idleprocs=(\d+) threads=(\d+) '
                  r'spinningthreads=(\d+) idlethreads=(\d+) runqueue=(\d+) \[([\d ]*)\]$')

env = dict(os.environ, GORT_DEBUG='schedtrace=50')
p = subprocess.run([sys.argv[1]], env=env, capture_output=True, text=True, timeout=60)
lines = [l for l in p.stderr.splitlines() if l]
print('\n'.join(lines))
bad = [l for l in lines if not LINE.match(l)]
ok = p.returncode == 0 and lines and not bad
parsed = [LINE.match(l).groups() for l in lines if LINE.match(l)]
if ok:
    ok = all(int(g[1]) == 4 and len(g[7].split()) == 4 for g in parsed)
    busy = any(int(g[6]) + sum(map(int, g[7].split())) > 0 for g in parsed)
    idle = int(parsed[-1][2]) == 4
    ok = ok and busy and idle
    if not busy:
        print('FAIL: never saw a G queued')
    if not idle:
        print('FAIL: the last line does not show 4 idle Ps')
for l in bad:
    print('FAIL: unexpected line: %r' % l)
print('ok' if ok else 'FAIL (exit %d)' % p.returncode)
sys.exit(0 if ok else 1)
