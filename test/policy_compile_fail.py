#!/usr/bin/env python3
"""A traits' run_queue that lacks a member must not compile, and the first
error must name the member and point at gort/policy.hpp.

Usage: policy_compile_fail.py <include dir> <source> <compiler...>
"""
import subprocess
import sys

include, source, cxx = sys.argv[1], sys.argv[2], sys.argv[3:]
r = subprocess.run(cxx + ['-std=c++20', '-fsyntax-only', '-I', include, source],
                   capture_output=True, text=True)
out = r.stdout + r.stderr
want = 'needs `G* steal_into(run_queue& thief)`'
if r.returncode == 0:
    sys.exit('compiled, but it lacks steal_into')
if want not in out or 'gort/policy.hpp' not in out:
    print(out[:4000])
    sys.exit('the error does not say: ' + want + ' ... gort/policy.hpp')
print('rejected with: ' + next(l for l in out.splitlines() if want in l).strip())
