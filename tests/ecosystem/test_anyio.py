"""anyio's asyncio backend on fastloop, through anyio.run's
`backend_options={"loop_factory": ...}` (anyio >= 4: its own Runner takes
the factory): task groups, cancel scopes (deadlines, shielding), worker
threads in both directions, and its TCP streams."""

import os
import signal
import socket
import sys
import threading

import pytest

from eco import check_loop_kind, check_task_kind, need

anyio = need("anyio")

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def anyio_run(loop_factory):
    def run(main, *args):
        async def checked():
            check_loop_kind(loop_factory.name)
            check_task_kind(loop_factory.name)
            with anyio.fail_after(20):
                return await main(*args)

        return anyio.run(
            checked, backend="asyncio", backend_options={"loop_factory": loop_factory}
        )

    return run


def test_task_group_runs_children_and_collects_results(anyio_run):
    async def main():
        results = {}

        async def child(i):
            await anyio.sleep(0.001 * (5 - i))
            results[i] = i * i

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(child, i, name=f"child-{i}")
        return results

    assert anyio_run(main) == {i: i * i for i in range(5)}


def test_task_group_start_waits_for_task_status(anyio_run):
    async def main():
        events = []

        async def server(*, task_status=anyio.TASK_STATUS_IGNORED):
            events.append("starting")
            await anyio.sleep(0)
            task_status.started("ready-value")
            events.append("started")
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            value = await tg.start(server)
            events.append(("start returned", value))
            tg.cancel_scope.cancel()
        return events

    # started() wakes the parent; the child runs on until its next await.
    assert anyio_run(main) == ["starting", "started", ("start returned", "ready-value")]


def test_failing_child_cancels_siblings_and_raises_exception_group(anyio_run):
    async def main():
        cancelled = []

        async def sibling():
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append("sibling")
                raise

        async def failing():
            await anyio.sleep(0.001)
            raise ValueError("child failed")

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sibling)
                tg.start_soon(failing)
        except ExceptionGroup as group:
            return cancelled, [repr(e) for e in group.exceptions]
        return cancelled, None

    assert anyio_run(main) == (["sibling"], ["ValueError('child failed')"])


def test_move_on_after_and_fail_after(anyio_run):
    async def main():
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep_forever()
        moved_on = scope.cancelled_caught
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.01):
                await anyio.sleep_forever()
        with anyio.move_on_after(10) as relaxed:
            await anyio.sleep(0)
        return moved_on, relaxed.cancelled_caught, relaxed.cancel_called

    assert anyio_run(main) == (True, False, False)


def test_shielded_scope_finishes_its_work_inside_a_cancelled_scope(anyio_run):
    async def main():
        log = []
        with anyio.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                # A shielded await completes although the outer scope is
                # cancelled ...
                await anyio.sleep(0.001)
                log.append("shielded work done")
            # ... and the first unshielded await raises the cancellation.
            try:
                await anyio.sleep(0)
            except anyio.get_cancelled_exc_class():
                log.append("cancelled after shield")
                raise
        log.append(("outer caught", outer.cancelled_caught))
        return log

    assert anyio_run(main) == [
        "shielded work done",
        "cancelled after shield",
        ("outer caught", True),
    ]


def test_cancelling_a_task_group_from_outside_runs_cleanup(anyio_run):
    async def main():
        log = []

        async def worker(i):
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0)
                    log.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(worker, i)
            await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
        return sorted(log)

    assert anyio_run(main) == [0, 1, 2]


def test_to_thread_and_from_thread_round_trip(anyio_run):
    async def main():
        loop_thread = threading.get_ident()

        async def on_loop(x):
            await anyio.sleep(0)
            return x + 1, threading.get_ident()

        def in_worker(x):
            # from_thread.run calls back into the event loop and blocks on it.
            back = anyio.from_thread.run(on_loop, x)
            sync_back = anyio.from_thread.run_sync(lambda: threading.get_ident())
            return back, sync_back, threading.get_ident()

        (value, ran_on), sync_ran_on, worker = await anyio.to_thread.run_sync(in_worker, 41)
        with pytest.raises(ZeroDivisionError):
            await anyio.to_thread.run_sync(lambda: 1 / 0)
        limiter = anyio.CapacityLimiter(2)
        results = []
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(_run_limited, limiter, i, results)
        return (
            value,
            ran_on == loop_thread,
            sync_ran_on == loop_thread,
            worker != loop_thread,
            sorted(results),
        )

    async def _run_limited(limiter, i, results):
        results.append(await anyio.to_thread.run_sync(lambda: i * 10, limiter=limiter))

    assert anyio_run(main) == (42, True, True, True, [0, 10, 20, 30, 40, 50])


def test_memory_object_streams_and_events(anyio_run):
    async def main():
        send, receive = anyio.create_memory_object_stream(max_buffer_size=1)
        got = []
        done = anyio.Event()

        async def consumer():
            async with receive:
                async for item in receive:
                    got.append(item)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            async with send:
                for i in range(5):
                    await send.send(i)
            await done.wait()
        return got

    assert anyio_run(main) == [0, 1, 2, 3, 4]


def test_tcp_listener_and_connect_tcp_echo(anyio_run):
    async def main():
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def handle(stream):
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            replies = []
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                for word in (b"alpha", b"beta", b"x" * 100_000):
                    await client.send(word)
                    got = b""
                    while len(got) < len(word):
                        got += await client.receive()
                    replies.append(got[:10])
            tg.cancel_scope.cancel()
        await listener.aclose()
        return replies

    assert anyio_run(main) == [b"ALPHA", b"BETA", b"X" * 10]


def test_udp_sockets(anyio_run):
    async def main():
        async with await anyio.create_udp_socket(local_host="127.0.0.1") as server:
            port = server.extra(anyio.abc.SocketAttribute.local_port)
            async with await anyio.create_connected_udp_socket(
                "127.0.0.1", port, local_host="127.0.0.1"
            ) as client:
                replies = []
                for word in (b"a", b"bb", b"ccc"):
                    await client.send(word)
                    data, (host, peer_port) = await server.receive()
                    await server.sendto(data * 2, host, peer_port)
                    replies.append(await client.receive())
                return replies

    assert anyio_run(main) == [b"aa", b"bbbb", b"cccccc"]


def test_run_process_and_open_process(anyio_run):
    async def main():
        done = await anyio.run_process(
            [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
            input=b"from stdin",
        )
        failed = await anyio.run_process(
            [sys.executable, "-c", "raise SystemExit(3)"], check=False
        )
        async with await anyio.open_process(
            [sys.executable, "-c", "import sys\nfor l in sys.stdin: print(l.strip()[::-1], flush=True)"]
        ) as proc:
            await proc.stdin.send(b"abc\n")
            line = await proc.stdout.receive()
            await proc.stdin.aclose()
            code = await proc.wait()
        return done.stdout.strip(), done.returncode, failed.returncode, line.strip(), code

    assert anyio_run(main) == (b"FROM STDIN", 0, 3, b"cba", 0)


def test_signal_receiver(anyio_run):
    async def main():
        with anyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as signals:
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGUSR1)
            received = []
            async for signum in signals:
                received.append(signum)
                if len(received) == 2:
                    break
        return sorted(received)

    assert anyio_run(main) == sorted([signal.SIGUSR1, signal.SIGUSR2])


def test_wait_readable_and_writable_on_a_socketpair(anyio_run):
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            await anyio.wait_writable(a)
            async with anyio.create_task_group() as tg:
                got = []

                async def reader():
                    await anyio.wait_readable(b)
                    got.append(b.recv(10))

                tg.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                a.send(b"ping")
            return got

    assert anyio_run(main) == [b"ping"]
