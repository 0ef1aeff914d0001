"""asyncio's own helpers built on the loop core work on the loop unchanged:
timeouts (call_at + TimerHandle.cancel/when), sleep, gather, queues,
run_coroutine_threadsafe (call_soon_threadsafe).
"""

import asyncio
import threading
import time

import pytest

pytestmark = pytest.mark.timeout(10)


def test_sleeps_finish_in_order_of_their_delays(loop):
    order = []

    async def sleeper(delay):
        await asyncio.sleep(delay)
        order.append(delay)

    async def main():
        await asyncio.gather(*(sleeper(d) for d in (0.03, 0.01, 0.02, 0)))

    loop.run_until_complete(main())
    assert order == [0, 0.01, 0.02, 0.03]


def test_sleep_lasts_at_least_its_delay(loop):
    async def main():
        start = time.monotonic()
        await asyncio.sleep(0.05)
        return time.monotonic() - start

    assert loop.run_until_complete(main()) >= 0.05 - 1e-3


def test_sleep_zero_lets_other_tasks_run(loop):
    order = []

    async def worker(name):
        for i in range(3):
            order.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    loop.run_until_complete(main())
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_wait_for_times_out(loop):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.create_future(), 0.01)

    loop.run_until_complete(main())


def test_wait_for_returns_before_the_timeout(loop):
    async def main():
        return await asyncio.wait_for(asyncio.sleep(0.01, "result"), 5)

    assert loop.run_until_complete(main()) == "result"


def test_timeout_context_manager_cancels_the_block(loop):
    async def main():
        events = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                try:
                    await loop.create_future()
                except asyncio.CancelledError:
                    events.append("cancelled")
                    raise
        return events

    assert loop.run_until_complete(main()) == ["cancelled"]


def test_timeout_can_be_rescheduled(loop):
    async def main():
        async with asyncio.timeout(None) as cm:
            assert cm.when() is None
            cm.reschedule(loop.time() + 5)
            await asyncio.sleep(0.01)
            cm.reschedule(None)
        return cm.expired()

    assert loop.run_until_complete(main()) is False


def test_queue_passes_items_between_tasks_in_order(loop):
    async def main():
        queue = asyncio.Queue(maxsize=2)
        received = []

        async def producer():
            for i in range(20):
                await queue.put(i)
            await queue.put(None)

        async def consumer():
            while (item := await queue.get()) is not None:
                received.append(item)

        await asyncio.gather(producer(), consumer())
        return received

    assert loop.run_until_complete(main()) == list(range(20))


def test_run_coroutine_threadsafe_from_other_threads(loop):
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    results = []
    errors = []

    def in_thread(base):
        try:
            for i in range(50):
                fut = asyncio.run_coroutine_threadsafe(double(base + i), loop)
                results.append(fut.result(timeout=5))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(1000 * n,)) for n in range(4)]

    async def main():
        for thread in threads:
            thread.start()
        await loop.run_in_executor(None, lambda: [t.join(8) for t in threads])

    loop.run_until_complete(main())
    assert errors == []
    assert sorted(results) == sorted(2 * (1000 * n + i) for n in range(4) for i in range(50))


def test_event_set_from_another_thread_through_call_soon_threadsafe(loop):
    async def main():
        event = asyncio.Event()
        threading.Thread(target=loop.call_soon_threadsafe, args=(event.set,)).start()
        await asyncio.wait_for(event.wait(), 5)
        return event.is_set()

    assert loop.run_until_complete(main()) is True


def test_wait_first_completed_returns_the_first_done_task(loop):
    async def main():
        fast = asyncio.ensure_future(asyncio.sleep(0.01, "fast"))
        slow = asyncio.ensure_future(asyncio.sleep(5, "slow"))
        done, pending = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
        slow.cancel()
        return done == {fast}, pending == {slow}

    assert loop.run_until_complete(main()) == (True, True)
