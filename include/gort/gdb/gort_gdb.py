# gort_gdb.py: gdb commands for programs built with gort.
#
#   info goroutines            every G: id, status, wait reason, where it is
#   goroutine <id> bt          backtrace of one G, parked or running
#   goroutine <id> <command>   any gdb command in that G's context
#   goroutine all bt           the same for every G
#
# Loaded automatically by the .debug_gdb_scripts entry that every gort
# program carries (include/gort/detail/debug.hpp), when gdb's auto-load
# safe-path allows it; or by hand: `source <includedir>/gort/gdb/gort_gdb.py`.
# The program needs debug info (-g). See docs/debugging.md.
#
# How it works. Every G struct of the process is on one list,
# gort::v0::detail::debug_allgs, linked through g_base::allg
# (detail/debug.hpp). A G that is not running has its registers saved on
# its own stack, at g_base::ctx.sp, in the frame that the context switch
# lays out (detail/arch/x86_64/fcontext.hpp):
#
#   +0x00 MXCSR, x87 control word   +0x08 r12  +0x10 r13  +0x18 r14
#   +0x20 r15  +0x28 rbx  +0x30 rbp  +0x38 resume address   (0x40 bytes)
#
# When it resumes, the switch pops that frame and jumps to the resume
# address with rsp = ctx.sp + 0x40. To show such a G, the commands load
# those registers into the innermost frame of the selected (stopped) thread,
# let gdb's unwinder walk the G's stack, and put the thread's own registers
# back afterwards, whatever happens. A running G (or one in
# gort::blocking) is on a thread: its stack pointer lies within the G's
# stack, and the commands switch to that thread instead.
#
# Limits: a live process only for parked Gs (a core file's registers cannot
# be changed; the listing then shows resume addresses); x86-64 only, as
# gort.

import os
import struct

import gdb

_NS = 'gort::v0::detail::'
_REGISTRY = _NS + 'debug_allgs'
_FRAME = struct.Struct('<IHHQQQQQQQ')  # mxcsr x87cw pad r12 r13 r14 r15 rbx rbp rip
_FRAME_SIZE = 0x40
_MASK = (1 << 64) - 1
_CALLEE_SAVED = ('r12', 'r13', 'r14', 'r15', 'rbx', 'rbp')
_SWAPPED = ('rip', 'rsp') + _CALLEE_SAVED
_STATUS_FALLBACK = ['idle', 'runnable', 'running', 'syscall', 'waiting', 'dead']


def _u64(v):
    return int(v) & _MASK


class G(object):
    """What the commands need of one g_base, read once."""

    def __init__(self, val):
        self.val = val
        self.addr = _u64(val.address)
        self.goid = int(val['goid'])
        raw = val['atomicstatus'].address.cast(
            gdb.lookup_type('unsigned int').pointer()).dereference()
        self.status = _status_name(int(raw))
        try:
            self.waitreason = val['waitreason'].string()
        except gdb.error:
            self.waitreason = '?'
        self.sp = _u64(val['ctx']['sp'])
        self.lo = _u64(val['stk']['lo'])
        self.hi = _u64(val['stk']['hi'])
        self.sched = _u64(val['sched'])
        self.thread = None  # the gdb thread running it, if any

    def on_thread(self):
        return self.status in ('running', 'syscall')

    def started(self):
        return self.lo != 0

    def owns(self, sp):
        # Stacks are adjacent: only [lo, hi) is this G's.
        return self.lo != 0 and self.lo <= sp < self.hi


_status_names = None


def _status_name(v):
    global _status_names
    if _status_names is None:
        _status_names = {}
        try:
            for f in gdb.lookup_type(_NS + 'gstatus').fields():
                _status_names[int(f.enumval)] = f.name.split('::')[-1]
        except gdb.error:
            _status_names = dict(enumerate(_STATUS_FALLBACK))
    return _status_names.get(v, 'status%d' % v)


def _registry():
    sym = gdb.lookup_global_symbol(_REGISTRY)
    if sym is None:
        sym = gdb.lookup_static_symbol(_REGISTRY)
    if sym is None:
        raise gdb.GdbError(
            'gort: no %s in this program: is it a gort program built with -g?' % _REGISTRY)
    return sym.value()


def all_gs(include_dead=False):
    """The Gs on debug_allgs (without dead and idle ones unless asked),
    sorted by id, each with the thread that runs it if any."""
    reg = _registry()
    gbase = gdb.lookup_type(_NS + 'g_base')
    offset = None
    for f in gbase.fields():
        if f.name == 'allg':
            offset = f.bitpos // 8
    if offset is None:
        raise gdb.GdbError('gort: g_base has no member allg (gort_gdb.py is older than the headers?)')
    limit = int(reg['count']) + 1
    node = reg['first']
    out = []
    while _u64(node) != 0 and len(out) < limit:
        gp = gdb.Value(_u64(node) - offset).cast(gbase.pointer()).dereference()
        g = G(gp)
        if include_dead or g.status not in ('dead', 'idle'):
            out.append(g)
        node = node['next']
    out.sort(key=lambda g: g.goid)
    _find_threads(out)
    return out


def _find_threads(gs):
    """Sets g.thread for every G whose stack a thread is running on."""
    inferior = gdb.selected_inferior()
    if inferior is None or inferior.pid == 0:
        return
    orig = gdb.selected_thread()
    if orig is None:
        return
    orig_frame = _selected_frame()
    try:
        for th in inferior.threads():
            if not th.is_valid() or th.is_running():
                continue
            th.switch()
            sp = _u64(gdb.newest_frame().read_register('rsp'))
            for g in gs:
                if g.owns(sp):
                    g.thread = th
    finally:
        orig.switch()
        _reselect(orig_frame)


def _selected_frame():
    try:
        return gdb.selected_frame()
    except gdb.error:
        return None


def _reselect(frame):
    if frame is not None:
        try:
            frame.select()
        except (gdb.error, RuntimeError):
            pass


def _read_frame(g):
    mem = gdb.selected_inferior().read_memory(g.sp, _FRAME_SIZE)
    f = _FRAME.unpack(bytes(mem))
    regs = dict(zip(_CALLEE_SAVED, (f[3], f[4], f[5], f[6], f[7], f[8])))
    regs['rip'] = f[9]
    regs['rsp'] = (g.sp + _FRAME_SIZE) & _MASK
    return regs


def _set_regs(regs):
    for name in _SWAPPED:
        gdb.execute('set $%s = %d' % (name, regs[name]), to_string=True)


class NoRegisters(gdb.GdbError):
    """The selected thread's registers cannot be changed (a core file)."""

    def __init__(self, g, why, pc):
        gdb.GdbError.__init__(
            self, 'gort: cannot load G %d\'s registers (%s); it resumes at %s'
            % (g.goid, why, _describe_pc(pc)))
        self.short = 'resumes at %s (no live process: no backtrace)' % _describe_pc(pc)


def in_g_context(g, fn):
    """Runs fn() with the selected thread's registers replaced by the
    saved ones of parked G g; always restores them."""
    if not g.started():
        raise gdb.GdbError('gort: G %d has not run yet: it has no stack' % g.goid)
    if gdb.selected_thread() is None:
        raise gdb.GdbError('gort: no thread selected: run or attach to the program first')
    regs = _read_frame(g)
    sel = _selected_frame()
    gdb.newest_frame().select()  # frame 0: its registers are the thread's
    frame0 = gdb.newest_frame()
    saved = dict((r, _u64(frame0.read_register(r))) for r in _SWAPPED)
    # A thread stopped in a system call: gdb may cancel the call's restart
    # when the pc is written (orig_rax = -1); put it back as well.
    orig_rax = _read_orig_rax(frame0)
    try:
        try:
            _set_regs(regs)
        except gdb.error as e:
            raise NoRegisters(g, e, regs['rip'])
        return fn()
    finally:
        _set_regs(saved)
        if orig_rax is not None and _read_orig_rax(gdb.newest_frame()) != orig_rax:
            gdb.execute('set $orig_rax = %d' % orig_rax, to_string=True)
        _reselect(sel)


def _read_orig_rax(frame):
    try:
        return _u64(frame.read_register('orig_rax'))
    except (gdb.error, ValueError):
        return None


def on_g_thread(g, fn):
    """Runs fn() with the thread that runs G g selected."""
    orig = gdb.selected_thread()
    sel = _selected_frame()
    g.thread.switch()
    gdb.newest_frame().select()
    try:
        return fn()
    finally:
        orig.switch()
        _reselect(sel)


def in_g(g, fn):
    if g.thread is not None:
        return on_g_thread(g, fn)
    return in_g_context(g, fn)


# ---- "where": the first frame that is not gort's, the C++ library's or
# the C library's.

def _is_runtime_frame(f):
    name = f.name() or ''
    if name.startswith(('gort::', 'gort_v0_', 'std::', '__')):
        return True
    sal = f.find_sal()
    return sal.symtab is None  # no debug info: libc, libstdc++


def _describe(f):
    name = f.name() or '??'
    sal = f.find_sal()
    if name == 'operator()':
        # A lambda (or a function object): name the function it is in.
        outer = f.older()
        while outer is not None and (outer.name() == 'operator()' or _is_runtime_frame(outer)):
            outer = outer.older()
        name = '{lambda} in ' + (outer.name() if outer is not None else '??')
    if sal.symtab is not None:
        return '%s at %s:%d' % (name, os.path.basename(sal.symtab.filename), sal.line)
    return '%s (pc 0x%x)' % (name, _u64(f.pc()))


def _describe_pc(pc):
    try:
        block = gdb.block_for_pc(pc)
        fn = block.function if block is not None else None
        while block is not None and fn is None:
            block = block.superblock
            fn = block.function if block is not None else None
        if fn is not None:
            return '%s (pc 0x%x)' % (fn.print_name.split('(')[0], pc)
    except (gdb.error, RuntimeError):
        pass
    return 'pc 0x%x' % pc


def where_now(max_frames=64):
    """The first user frame of the selected thread's stack; if there is
    none (inlined, or a tail call), the outermost call into gort's public
    API; else the innermost frame."""
    f = gdb.newest_frame()
    first = f
    api = None
    for _ in range(max_frames):
        if f is None:
            break
        if not _is_runtime_frame(f):
            return _describe(f)
        name = f.name() or ''
        if name.startswith('gort::') and not name.startswith(_NS):
            api = f
        f = f.older()
    if api is not None:
        return _describe(api)
    return _describe(first) if first is not None else '?'


def where(g):
    if g.on_thread() and g.thread is None:
        return '(on a thread that gdb cannot see)'
    if not g.started():
        return '(not started)'
    try:
        w = in_g(g, where_now)
    except NoRegisters as e:
        return e.short
    except gdb.GdbError as e:
        return str(e)
    except gdb.error as e:
        return '? (%s)' % e
    if g.thread is not None:
        return 'thread %d (LWP %d): %s' % (g.thread.num, g.thread.ptid[1], w)
    return w


def find_g(goid):
    for g in all_gs(include_dead=True):
        if g.goid == goid:
            return g
    raise gdb.GdbError('gort: no G %d (info goroutines lists them)' % goid)


# ---- commands

WHERE_LIMIT = 1000  # Gs whose "where" info goroutines works out by default


class InfoGoroutines(gdb.Command):
    """List every G of every gort runtime in the program.
Usage: info goroutines [all] [where]
Columns: G id, status, wait reason (for a parked G), and where it is: for a
parked G the first frame outside gort and the C++ library, for a running G
its thread and current frame. `*' marks the G the selected thread runs.
`all' also lists dead G structs kept for reuse. Finding where a parked G
is takes an unwind (a few ms): beyond the first 1000 Gs it is left out
unless `where' is given."""

    def __init__(self):
        super(InfoGoroutines, self).__init__('info goroutines', gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split()
        unknown = [w for w in words if w not in ('all', 'where')]
        if unknown:
            raise gdb.GdbError('usage: info goroutines [all] [where]')
        gs = all_gs('all' in words)
        limit = len(gs) if 'where' in words else WHERE_LIMIT
        cur = gdb.selected_thread()
        runtimes = []
        for g in gs:
            if g.sched not in runtimes:
                runtimes.append(g.sched)
        several = len(runtimes) > 1
        header = '  %-6s %-9s %-22s %s%s' % ('G', 'status', 'wait reason',
                                            'runtime ' if several else '', 'where')
        gdb.write(header.rstrip() + '\n')
        for i, g in enumerate(gs):
            mark = '*' if (cur is not None and g.thread is not None and g.thread.ptid == cur.ptid) else ' '
            reason = g.waitreason if g.status == 'waiting' and g.waitreason else '-'
            rt = ('%-8d' % (runtimes.index(g.sched) + 1)) if several else ''
            w = where(g) if i < limit or g.thread is not None else '-'
            gdb.write('%s %-6d %-9s %-22s %s%s\n' % (mark, g.goid, g.status, reason, rt, w))
        gdb.write('%d goroutine%s%s\n' % (len(gs), '' if len(gs) == 1 else 's',
                                         (' in %d runtimes' % len(runtimes)) if several else ''))
        if len(gs) > limit:
            gdb.write('(where: shown for the first %d; `info goroutines where\' for all, '
                      '`goroutine <id> bt\' for one)\n' % limit)


class Goroutine(gdb.Command):
    """Run a gdb command in the context of one G (or of every G).
Usage: goroutine <id> <command>      e.g. goroutine 12 bt
       goroutine all <command>       e.g. goroutine all bt
A parked G's saved registers are loaded into the selected thread for the
command, then the thread's own are put back; a running G's thread is
selected for the command. Frames and their variables are only valid
during the command."""

    def __init__(self):
        super(Goroutine, self).__init__('goroutine', gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        parts = arg.split(None, 1)
        if len(parts) < 2:
            raise gdb.GdbError('usage: goroutine <id>|all <command>   (e.g. goroutine 12 bt)')
        which, cmd = parts
        if which == 'all':
            for g in all_gs():
                gdb.write('\ngoroutine %d [%s%s]:\n' % (
                    g.goid, g.status, (', ' + g.waitreason) if g.status == 'waiting' else ''))
                if not g.started():
                    gdb.write('(not started)\n')
                    continue
                try:
                    in_g(g, lambda: gdb.execute(cmd, from_tty))
                except gdb.GdbError as e:
                    gdb.write('%s\n' % e)
            return
        try:
            goid = int(which, 0)
        except ValueError:
            raise gdb.GdbError('goroutine: %r is not a G id (or all)' % which)
        g = find_g(goid)
        if g.status == 'dead':
            raise gdb.GdbError('gort: G %d has exited' % goid)
        in_g(g, lambda: gdb.execute(cmd, from_tty))


def _register():
    if getattr(gdb, 'gort_loaded', False):
        return
    InfoGoroutines()
    Goroutine()
    gdb.gort_loaded = True


_register()
