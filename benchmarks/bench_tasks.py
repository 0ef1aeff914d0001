"""Future and Task benchmarks: coroutines driven by the loop's own Task and
Future types (whatever ``loop.create_task`` and ``loop.create_future``
return), combined with asyncio's public helpers (``gather``, ``sleep``,
``Queue``, ``TaskGroup``)."""

import asyncio

from .suite import benchmark

# Issue 3's time target: at least 1.3x uvloop's throughput.
THROUGHPUT_1_3X = round(1 / 1.3, 2)


async def _child():
    return None


@benchmark("tasks_gather", group="future/task", op="one task",
           instr_ops=2_000, warmup_ops=1_000, target=0.7,
           time_target=THROUGHPUT_1_3X,
           granule=100)
def tasks_gather(loop):
    """One op = one task: created with ``asyncio.create_task`` on a trivial
    coroutine, run to completion and collected by ``asyncio.gather``, in
    batches of 100 tasks per ``gather``.  This is the cost of Task creation,
    its first (and only) step, its done callbacks and gather's bookkeeping."""

    async def main(n):
        create_task = asyncio.create_task
        while n:
            size = min(n, 100)
            n -= size
            await asyncio.gather(*[create_task(_child())
                                   for _ in range(size)])

    def run(n):
        loop.run_until_complete(main(n))

    return run


@benchmark("future_pingpong", group="future/task", op="one round trip",
           instr_ops=2_000, warmup_ops=2_000, target=0.6,
           time_target=THROUGHPUT_1_3X)
def future_pingpong(loop):
    """One op = one round trip between two tasks that wake each other through
    fresh futures: ping creates a future, resolves pong's future and awaits
    its own; pong wakes, resolves ping's future and awaits a new one.  Per
    round trip: two ``loop.create_future()``, two ``set_result``, two task
    wake-ups and two task steps."""

    async def main(n):
        box = [None, None]  # [pong waits on this, ping waits on this]

        async def pong():
            while True:
                fut = box[0] = loop.create_future()
                await fut
                box[1].set_result(None)

        partner = asyncio.create_task(pong())
        await asyncio.sleep(0)  # let pong create its first future
        for _ in range(n):
            fut = box[1] = loop.create_future()
            box[0].set_result(None)
            await fut
        partner.cancel()
        try:
            await partner
        except asyncio.CancelledError:
            pass

    def run(n):
        loop.run_until_complete(main(n))

    return run


SLEEP_TASKS = 100


@benchmark("sleep0_switch", group="future/task", op="one task switch",
           instr_ops=6_000, warmup_ops=2_000, target=0.6,
           time_target=THROUGHPUT_1_3X,
           granule=SLEEP_TASKS)
def sleep0_switch(loop):
    """One op = one ``await asyncio.sleep(0)`` in one of 100 concurrently
    running tasks, i.e. one switch: the task yields, is rescheduled at the
    back of the ready queue and is resumed once the 99 others have had their
    turn.  The tasks are created and gathered once per run, outside the
    per-op cost."""

    async def spin(count):
        for _ in range(count):
            await asyncio.sleep(0)

    async def main(n):
        per, extra = divmod(n, SLEEP_TASKS)
        await asyncio.gather(*[
            asyncio.create_task(spin(per + (i < extra)))
            for i in range(SLEEP_TASKS)])

    def run(n):
        loop.run_until_complete(main(n))

    return run


def _queue_benchmark(maxsize):
    def queue(loop):
        async def main(n):
            q = asyncio.Queue(maxsize)

            async def produce():
                put = q.put
                for i in range(n):
                    await put(i)

            producer = asyncio.create_task(produce())
            get = q.get
            for _ in range(n):
                await get()
            await producer

        def run(n):
            loop.run_until_complete(main(n))

        return run

    if maxsize == 1:
        how = ("With maxsize 1 the two tasks alternate on every item: each "
               "item costs a blocked put, a blocked get and two wake-ups "
               "through the queue's internal futures.")
    else:
        how = (f"With room for {maxsize} items the producer runs ahead until "
               "the queue is full, so most puts and gets complete without "
               "blocking; wake-ups are amortised over many items.")
    queue.__doc__ = (
        "One op = one item passed from a producer task to a consumer task "
        f"through ``asyncio.Queue(maxsize={maxsize})`` with ``await "
        "q.put(item)`` / ``await q.get()``.  " + how)
    return queue


benchmark("queue_maxsize1", group="future/task", op="one item",
          instr_ops=1_000, warmup_ops=2_000, target=0.7,
          time_target=THROUGHPUT_1_3X)(
    _queue_benchmark(1))
benchmark("queue_maxsize100", group="future/task", op="one item",
          instr_ops=10_000, warmup_ops=2_000)(
    _queue_benchmark(100))


@benchmark("taskgroup_fanout", group="future/task", op="one child task",
           instr_ops=2_000, warmup_ops=1_000, granule=100)
def taskgroup_fanout(loop):
    """One op = one child task of an ``asyncio.TaskGroup``: fan out 100
    children with ``tg.create_task`` on a trivial coroutine and fan in when
    the ``async with`` block exits; repeat.  This is the cost of Task
    creation, its step, the group's done callback and its join."""

    async def main(n):
        while n:
            size = min(n, 100)
            n -= size
            async with asyncio.TaskGroup() as tg:
                create_task = tg.create_task
                for _ in range(size):
                    create_task(_child())

    def run(n):
        loop.run_until_complete(main(n))

    return run
