# Run inside gdb by test/gdb/run.sh: debugs gdb_target, whose Gs park at
# known functions, and checks what gort's gdb extension shows.
#   GORT_GDB_MODE=auto     the extension must load by itself (the program's
#                          .debug_gdb_scripts entry)
#   GORT_GDB_MODE=source   the program was built with GORT_NO_GDB_SCRIPT: it
#                          must not load; `source $GORT_GDB_SCRIPT` then works
# Exits gdb with 0 when every check passed, 1 otherwise.
import os
import re

import gdb

failures = []


def check(cond, what):
    print('%s: %s' % ('ok' if cond else 'FAIL', what))
    if not cond:
        failures.append(what)


# function -> (status, wait reason or None)
EXPECTED = {
    'parked_in_recv_here': ('waiting', 'chan receive'),
    'parked_in_mutex_here': ('waiting', 'sync.Mutex.Lock'),
    'parked_in_sleep_here': ('waiting', 'sleep'),
    'parked_in_wait_group_here': ('waiting', 'sync.WaitGroup.Wait'),
    'blocked_in_syscall_here': ('syscall', None),
}


def run():
    gdb.execute('set pagination off')
    gdb.execute('set confirm off')
    gdb.execute('break gort_gdb_test_breakpoint')
    gdb.execute('run')

    mode = os.environ.get('GORT_GDB_MODE', 'auto')
    loaded = getattr(gdb, 'gort_loaded', False)
    if mode == 'source':
        check(not loaded, 'built with GORT_NO_GDB_SCRIPT: nothing auto-loaded')
        gdb.execute('source ' + os.environ['GORT_GDB_SCRIPT'])
    else:
        check(loaded, 'the .debug_gdb_scripts loader sourced gort_gdb.py')
        if not loaded:
            return

    frame0 = gdb.newest_frame()
    before = (int(frame0.pc()), int(frame0.read_register('rsp')), int(frame0.read_register('rbp')))

    listing = gdb.execute('info goroutines', to_string=True)
    print(listing)
    check(re.search(r'^5 goroutines$', listing, re.M) is not None, 'five Gs listed')
    ids = {}
    for fn, (status, reason) in EXPECTED.items():
        line = next((l for l in listing.splitlines() if fn in l), None)
        check(line is not None, '%s: a G is listed there' % fn)
        if line is None:
            continue
        tokens = line[1:].split()
        ids[fn] = int(tokens[0])
        check(tokens[1] == status, '%s: status %s (got %s)' % (fn, status, tokens[1]))
        if reason is not None:
            check(reason in line, '%s: wait reason "%s"' % (fn, reason))
        else:
            check(re.search(r'thread \d+ \(LWP \d+\)', line) is not None,
                  '%s: the thread it runs on is shown' % fn)

    for fn, goid in sorted(ids.items(), key=lambda kv: kv[1]):
        bt = gdb.execute('goroutine %d bt' % goid, to_string=True)
        print('goroutine %d bt:\n%s' % (goid, bt))
        check(fn in bt, 'goroutine %d bt shows %s' % (goid, fn))
        check('gort_v0_fcontext_start' in bt,
              'goroutine %d bt reaches the G\'s first frame' % goid)
        if EXPECTED[fn][0] == 'waiting':
            check('gopark' in bt, 'goroutine %d bt shows gopark' % goid)

    every = gdb.execute('goroutine all bt', to_string=True)
    check(all(fn in every for fn in EXPECTED), 'goroutine all bt shows every G')

    frame0 = gdb.newest_frame()
    after = (int(frame0.pc()), int(frame0.read_register('rsp')), int(frame0.read_register('rbp')))
    check(before == after, 'the thread\'s registers are restored')
    check('gort_gdb_test_breakpoint' in gdb.execute('bt 1', to_string=True),
          'the thread\'s own backtrace is back')

    try:
        gdb.execute('goroutine 999999 bt', to_string=True)
        check(False, 'an unknown G id is an error')
    except gdb.error as e:
        check('no G 999999' in str(e), 'an unknown G id is an error: %s' % e)


try:
    run()
except Exception as e:  # a gdb error in the middle: report it as a failure
    check(False, 'unexpected error: %s' % e)
print('%d failure(s)' % len(failures))
gdb.execute('kill')
gdb.execute('quit %d' % (1 if failures else 0))
