"""Loop-core benchmarks: the ready queue, timers and I/O readiness callbacks.

Each benchmark drives the loop with plain callbacks (no coroutines), so it
measures the loop's own machinery: ``call_soon``, ``call_later``,
``TimerHandle.cancel`` and ``add_reader``.
"""

import socket
import time

from .suite import benchmark


def _spread(count, low, high):
    """`count` distinct delays evenly covering [low, high), in a scrambled
    but fixed order (a multiplicative permutation), so that consecutive
    timers land in different places of the timer heap.  The order is the
    same on every run: instruction counts must be reproducible."""
    step = (high - low) / count
    stride = 7919  # a prime: i * stride mod count visits every slot once
    while count % stride == 0:
        stride += 2
    return [low + ((i * stride) % count) * step for i in range(count)]


@benchmark("call_soon_chain", group="loop core", op="one callback step",
           instr_ops=5_000, warmup_ops=2_000, target=0.6, time_target=1.0)
def call_soon_chain(loop):
    """One op = one step of a callback chain: each callback runs, counts
    itself and schedules the next one with ``loop.call_soon``.  There is
    always exactly one ready callback, so every step is also one loop
    iteration: this is the cost of the ready queue, of a Handle and of the
    run-once bookkeeping."""

    def run(n):
        done = loop.create_future()
        remaining = n

        def step():
            nonlocal remaining
            remaining -= 1
            if remaining:
                loop.call_soon(step)
            else:
                done.set_result(None)

        loop.call_soon(step)
        loop.run_until_complete(done)

    return run


# Timers firing: delays spread over 0.6-1.6 ms.  They start above 0.5 ms
# because uvloop turns a call_later delay that rounds to 0 ms into call_soon,
# which would not measure a timer at all.
FIRE_BATCH = 1000
FIRE_DELAYS = _spread(FIRE_BATCH, 0.0006, 0.0016)
# After scheduling a batch the scheduling callback sleeps this long (wall
# time, not CPU time) so that the whole batch is due when the loop next polls.
# Which timers fire in which iteration is then the same on every run and every
# loop (uvloop's millisecond clock included), which makes instruction counts
# reproducible; and the timed mode measures CPU time, which the sleep does
# not add to.
FIRE_SETTLE = 0.003


@benchmark("timers_firing", group="loop core", op="one timer fired",
           instr_ops=3_000, warmup_ops=FIRE_BATCH, target=0.7,
           time_target=1.0,
           granule=FIRE_BATCH)
def timers_firing(loop):
    """One op = one ``call_later`` timer scheduled and fired.  Timers are
    scheduled in batches of 1000 with delays spread over 0.6-1.6 ms in a
    scrambled order (so the timer heap really has to order them); the last
    timer of a batch to fire schedules the next batch.  The scheduling
    callback then sleeps 3 ms so the whole batch is due at the next poll:
    this is the cost of inserting into the timer heap, popping due timers
    and running their callbacks."""

    def run(n):
        done = loop.create_future()
        todo = n
        pending = 0

        def fired():
            nonlocal pending
            pending -= 1
            if pending == 0:
                schedule_batch()

        def schedule_batch():
            nonlocal todo, pending
            if todo == 0:
                done.set_result(None)
                return
            size = min(todo, FIRE_BATCH)
            todo -= size
            pending = size
            call_later = loop.call_later
            for delay in FIRE_DELAYS[:size]:
                call_later(delay, fired)
            time.sleep(FIRE_SETTLE)

        loop.call_soon(schedule_batch)
        loop.run_until_complete(done)

    return run


CANCEL_BATCH = 100
# Far in the future: these timers must never come due during a run, or
# which ones get popped would depend on timing.
CANCEL_DELAYS = _spread(CANCEL_BATCH, 600.0, 1200.0)


@benchmark("timers_cancelled", group="loop core",
           op="one call_later + cancel", instr_ops=5_000,
           warmup_ops=2_000, target=0.7, time_target=1.0,
           granule=CANCEL_BATCH)
def timers_cancelled(loop):
    """One op = one ``call_later`` followed later by ``cancel()`` of the
    returned TimerHandle, the life of a timeout that is not needed after all.
    Each loop iteration schedules 100 timers with delays spread over
    10-20 minutes, then cancels them in scheduling order (which is scrambled
    with respect to their deadlines), then yields to the loop.  Timers never
    fire."""

    def never():
        raise AssertionError("a cancelled timer fired")

    def run(n):
        done = loop.create_future()
        todo = n

        def batch():
            nonlocal todo
            if todo == 0:
                done.set_result(None)
                return
            size = min(todo, CANCEL_BATCH)
            todo -= size
            call_later = loop.call_later
            handles = [call_later(delay, never)
                       for delay in CANCEL_DELAYS[:size]]
            for handle in handles:
                handle.cancel()
            loop.call_soon(batch)

        loop.call_soon(batch)
        loop.run_until_complete(done)

    return run


@benchmark("reader_pingpong", group="loop core", op="one round trip",
           instr_ops=1_500, warmup_ops=1_000, target=0.8, time_target=1.0)
def reader_pingpong(loop):
    """One op = one round trip of a single byte over a socketpair driven by
    two ``add_reader`` callbacks: side A sends a byte, B's reader receives it
    and sends it back, A's reader receives it and sends the next.  Each round
    trip is two readiness events, two loop iterations and four socket
    syscalls; the syscalls are the same on every loop, the rest is the loop's
    I/O watcher and dispatch cost."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    afd, bfd = a.fileno(), b.fileno()

    def run(n):
        done = loop.create_future()
        remaining = n

        def on_b():
            b.send(b.recv(1))

        def on_a():
            nonlocal remaining
            a.recv(1)
            remaining -= 1
            if remaining:
                a.send(b"x")
            else:
                loop.remove_reader(afd)
                loop.remove_reader(bfd)
                done.set_result(None)

        loop.add_reader(bfd, on_b)
        loop.add_reader(afd, on_a)
        a.send(b"x")
        loop.run_until_complete(done)

    def close():
        a.close()
        b.close()

    return run, close
