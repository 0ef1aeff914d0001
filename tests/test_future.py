"""fastloop.Future behaves as asyncio.Future.

https://docs.python.org/3/library/asyncio-future.html#future-object

Each test runs three ways (the `impl` fixture): fastloop's Future on a
fastloop loop (the C fast path), asyncio's Future on asyncio's loop (the
specification), and fastloop's Future on asyncio's loop (the generic path
through loop.call_soon).
"""

import asyncio
import contextvars
import gc
import sys
import types
import weakref

import pytest

import fastloop

pytestmark = pytest.mark.timeout(10)

IMPLS = ["fastloop", "asyncio", "fastloop-on-asyncio"]


class Impl:
    """A loop plus the Future and Task types under test on it."""

    def __init__(self, name):
        self.name = name
        if name == "asyncio":
            self.Future, self.Task = asyncio.Future, asyncio.Task
            self.loop = asyncio.new_event_loop()
        elif name == "fastloop":
            self.Future, self.Task = fastloop.Future, fastloop.Task
            self.loop = fastloop.new_event_loop()
        else:
            self.Future, self.Task = fastloop.Future, fastloop.Task
            self.loop = asyncio.new_event_loop()
            Future, Task = self.Future, self.Task
            self.loop.create_future = lambda: Future(loop=self.loop)
            self.loop.set_task_factory(
                lambda loop, coro, **kw: Task(coro, loop=loop, **kw))

    def future(self):
        return self.Future(loop=self.loop)

    def run(self, coro):
        return self.loop.run_until_complete(self.Task(coro, loop=self.loop))

    def run_once(self):
        """Run the callbacks that are ready now (one loop iteration)."""
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()


@pytest.fixture(params=IMPLS)
def impl(request):
    impl = Impl(request.param)
    try:
        yield impl
    finally:
        impl.loop.close()
        asyncio.set_event_loop(None)


def collect_exception_contexts(loop):
    contexts = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))
    return contexts


# --------------------------------------------------------------------- state


def test_a_new_future_is_pending(impl):
    fut = impl.future()
    assert not fut.done()
    assert not fut.cancelled()
    assert fut.get_loop() is impl.loop
    assert asyncio.isfuture(fut)


@pytest.mark.skipif(sys.version_info < (3, 15),
                    reason="3.15 initialises a Future only once")
def test_initialising_a_future_again_raises_runtime_error(impl):
    fut = impl.future()
    fut.set_result(1)
    with pytest.raises(RuntimeError, match="object is already initialized"):
        fut.__init__(loop=impl.loop)
    assert fut.result() == 1


def test_result_of_a_pending_future_raises_invalid_state(impl):
    fut = impl.future()
    with pytest.raises(asyncio.InvalidStateError, match="Result is not set"):
        fut.result()
    with pytest.raises(asyncio.InvalidStateError,
                       match="Exception is not set"):
        fut.exception()


def test_set_result_makes_the_future_done(impl):
    fut = impl.future()
    fut.set_result(42)
    assert fut.done()
    assert not fut.cancelled()
    assert fut.result() == 42
    assert fut.exception() is None


def test_set_result_twice_raises_invalid_state(impl):
    fut = impl.future()
    fut.set_result(1)
    with pytest.raises(asyncio.InvalidStateError, match="invalid state"):
        fut.set_result(2)
    with pytest.raises(asyncio.InvalidStateError):
        fut.set_exception(ValueError())
    assert fut.result() == 1


def test_set_exception_makes_result_raise_it(impl):
    fut = impl.future()
    exc = ValueError("boom")
    fut.set_exception(exc)
    assert fut.done()
    assert fut.exception() is exc
    with pytest.raises(ValueError, match="boom"):
        fut.result()


def test_set_exception_with_a_class_instantiates_it(impl):
    fut = impl.future()
    fut.set_exception(KeyError)
    assert type(fut.exception()) is KeyError


def test_set_exception_rejects_non_exceptions(impl):
    fut = impl.future()
    with pytest.raises(TypeError):
        fut.set_exception(42)
    assert not fut.done()


def test_set_exception_rejects_stop_iteration(impl):
    fut = impl.future()
    if sys.version_info >= (3, 13):
        fut.set_exception(StopIteration(1))
        assert type(fut.exception()) is RuntimeError
        assert type(fut.exception().__cause__) is StopIteration
    else:
        with pytest.raises(TypeError, match="StopIteration"):
            fut.set_exception(StopIteration)
        assert not fut.done()


def test_cancel_makes_the_future_cancelled(impl):
    fut = impl.future()
    assert fut.cancel() is True
    assert fut.cancelled()
    assert fut.done()
    with pytest.raises(asyncio.CancelledError):
        fut.result()
    with pytest.raises(asyncio.CancelledError):
        fut.exception()


def test_cancel_of_a_done_future_returns_false(impl):
    fut = impl.future()
    fut.set_result(None)
    assert fut.cancel() is False
    assert not fut.cancelled()


def test_cancel_message_positional(impl):
    fut = impl.future()
    fut.cancel("stop now")
    assert fut._cancel_message == "stop now"
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ("stop now",)


def test_cancel_message_keyword(impl):
    fut = impl.future()
    fut.cancel(msg="by keyword")
    with pytest.raises(asyncio.CancelledError) as info:
        fut.exception()
    assert info.value.args == ("by keyword",)


def test_cancel_rejects_unknown_keywords(impl):
    with pytest.raises(TypeError):
        impl.future().cancel(message="x")


def test_cancel_message_is_writable(impl):
    fut = impl.future()
    fut.cancel("old")
    fut._cancel_message = "new"
    with pytest.raises(asyncio.CancelledError, match="new"):
        fut.result()


def test_make_cancelled_error_uses_the_message(impl):
    fut = impl.future()
    fut.cancel("why")
    exc = fut._make_cancelled_error()
    assert isinstance(exc, asyncio.CancelledError)
    assert exc.args == ("why",)


def test_state_attribute_names_the_state(impl):
    fut = impl.future()
    assert fut._state == "PENDING"
    fut.cancel()
    assert fut._state == "CANCELLED"
    fut = impl.future()
    fut.set_result(None)
    assert fut._state == "FINISHED"


def test_result_and_exception_attributes(impl):
    fut = impl.future()
    assert fut._result is None and fut._exception is None
    fut.set_result("r")
    assert fut._result == "r"
    assert fut._loop is impl.loop


def test_asyncio_future_blocking_is_readable_and_writable(impl):
    fut = impl.future()
    assert fut._asyncio_future_blocking is False
    fut._asyncio_future_blocking = True
    assert fut._asyncio_future_blocking is True
    fut._asyncio_future_blocking = False
    assert fut._asyncio_future_blocking is False


def test_log_traceback_can_only_be_set_to_false(impl):
    fut = impl.future()
    fut.set_exception(ValueError())
    assert fut._log_traceback is True
    with pytest.raises(ValueError, match="only be set to False"):
        fut._log_traceback = True
    fut._log_traceback = False
    assert fut._log_traceback is False


def test_class_getitem_makes_a_generic_alias(impl):
    alias = impl.Future[int]
    assert isinstance(alias, types.GenericAlias)
    assert alias.__args__ == (int,)


def test_future_takes_no_positional_arguments(impl):
    with pytest.raises(TypeError):
        impl.Future(impl.loop)


def test_future_without_loop_uses_the_running_loop(impl):
    async def make():
        return impl.Future()

    fut = impl.run(make())
    assert fut.get_loop() is impl.loop


# ---------------------------------------------------------------------- repr


def test_repr_of_each_state(impl):
    fut = impl.future()
    assert repr(fut) == "<Future pending>"
    fut.set_result([1, 2])
    assert repr(fut) == "<Future finished result=[1, 2]>"
    fut = impl.future()
    fut.set_exception(ValueError("x"))
    fut.exception()
    assert repr(fut) == "<Future finished exception=ValueError('x')>"
    fut = impl.future()
    fut.cancel()
    assert repr(fut) == "<Future cancelled>"


def test_repr_lists_callbacks(impl):
    fut = impl.future()

    def on_done(f):
        pass

    fut.add_done_callback(on_done)
    assert repr(fut).startswith(
        "<Future pending cb=[test_repr_lists_callbacks.<locals>.on_done() at ")


def test_repr_shows_where_it_was_created_in_debug_mode(impl):
    impl.loop.set_debug(True)
    fut = impl.future()
    assert fut._source_traceback
    assert fut._source_traceback[-1][2] == "future"
    assert "created at " in repr(fut)


def test_no_source_traceback_without_debug_mode(impl):
    assert impl.future()._source_traceback is None


# ----------------------------------------------------------------- callbacks


def test_done_callbacks_run_from_the_loop_not_inline(impl):
    fut = impl.future()
    calls = []
    fut.add_done_callback(calls.append)
    fut.set_result(1)
    assert calls == []
    impl.run_once()
    assert calls == [fut]


def test_callback_added_to_a_done_future_is_scheduled(impl):
    fut = impl.future()
    fut.set_result(1)
    calls = []
    fut.add_done_callback(calls.append)
    assert calls == []
    impl.run_once()
    assert calls == [fut]


def test_done_callbacks_run_in_registration_order(impl):
    fut = impl.future()
    order = []
    for i in range(5):
        fut.add_done_callback(lambda f, i=i: order.append(i))
    fut.cancel()
    impl.run_once()
    assert order == [0, 1, 2, 3, 4]


def test_done_callbacks_interleave_with_call_soon_in_fifo_order(impl):
    fut = impl.future()
    order = []
    impl.loop.call_soon(order.append, "before")
    fut.add_done_callback(lambda f: order.append("callback"))
    fut.set_result(None)
    impl.loop.call_soon(order.append, "after")
    impl.run_once()
    assert order == ["before", "callback", "after"]


def test_done_callback_runs_in_the_context_it_was_added_in(impl):
    var = contextvars.ContextVar("var", default="outside")
    seen = []
    fut = impl.future()

    def add():
        var.set("inside")
        fut.add_done_callback(lambda f: seen.append(var.get()))

    contextvars.copy_context().run(add)
    fut.set_result(None)
    impl.run_once()
    assert seen == ["inside"]


def test_done_callback_runs_in_the_given_context(impl):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")
    seen = []
    fut = impl.future()
    fut.add_done_callback(lambda f: seen.append(var.get()), context=ctx)
    fut.set_result(None)
    impl.run_once()
    assert seen == ["given"]


def test_remove_done_callback_returns_how_many_were_removed(impl):
    fut = impl.future()
    calls = []

    def a(f):
        calls.append("a")

    def b(f):
        calls.append("b")

    fut.add_done_callback(a)
    fut.add_done_callback(b)
    fut.add_done_callback(a)
    assert fut.remove_done_callback(a) == 2
    assert fut.remove_done_callback(a) == 0
    fut.set_result(None)
    impl.run_once()
    assert calls == ["b"]


def test_callbacks_attribute_lists_pending_callbacks(impl):
    fut = impl.future()
    assert not fut._callbacks

    def cb(f):
        pass

    fut.add_done_callback(cb)
    [(fn, ctx)] = fut._callbacks
    assert fn is cb
    assert isinstance(ctx, contextvars.Context)


def test_a_raising_callback_goes_to_the_exception_handler(impl):
    contexts = collect_exception_contexts(impl.loop)
    fut = impl.future()

    def bad(f):
        raise ZeroDivisionError("in callback")

    fut.add_done_callback(bad)
    fut.set_result(None)
    impl.run_once()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


def test_callback_error_report_names_the_callback(impl):
    contexts = collect_exception_contexts(impl.loop)
    fut = impl.future()

    def broken_callback(f):
        raise ZeroDivisionError

    fut.add_done_callback(broken_callback)
    fut.set_result(None)
    impl.run_once()
    assert contexts[0]["message"].startswith(
        "Exception in callback test_callback_error_report_names_the_callback"
        ".<locals>.broken_callback(")


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="3.12 runs the handler in the callback's context")
def test_exception_handler_runs_in_the_callback_context(impl):
    var = contextvars.ContextVar("var", default="outside")
    seen = []
    impl.loop.set_exception_handler(
        lambda loop, context: seen.append(var.get()))
    fut = impl.future()
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback's")

    def bad(f):
        raise ZeroDivisionError

    fut.add_done_callback(bad, context=ctx)
    fut.set_result(None)
    impl.run_once()
    assert seen == ["callback's"]


def test_set_result_on_a_closed_loop_with_callbacks_raises(impl):
    fut = impl.future()
    fut.add_done_callback(lambda f: None)
    impl.loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        fut.set_result(None)


# --------------------------------------------------------------------- await


def test_await_returns_the_result(impl):
    fut = impl.future()
    impl.loop.call_soon(fut.set_result, "value")

    async def main():
        return await fut

    assert impl.run(main()) == "value"


def test_await_raises_the_exception(impl):
    fut = impl.future()
    impl.loop.call_soon(fut.set_exception, LookupError("nope"))

    async def main():
        await fut

    with pytest.raises(LookupError, match="nope"):
        impl.run(main())


def test_await_of_a_cancelled_future_raises_cancelled_error(impl):
    fut = impl.future()
    impl.loop.call_soon(fut.cancel, "gone")

    async def main():
        try:
            await fut
        except asyncio.CancelledError as exc:
            return exc.args

    assert impl.run(main()) == ("gone",)


def test_yield_from_a_future_works_like_await(impl):
    fut = impl.future()
    fut.set_result(3)
    it = iter(fut)
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == 3


def test_iterating_a_pending_future_yields_the_future_once(impl):
    fut = impl.future()
    it = fut.__await__()
    assert next(it) is fut
    assert fut._asyncio_future_blocking is True
    with pytest.raises(RuntimeError, match="await wasn't used with future"):
        next(it)


def test_await_iterator_keeps_a_tuple_result_whole(impl):
    fut = impl.future()
    fut.set_result((1, 2))
    with pytest.raises(StopIteration) as info:
        fut.__await__().send(None)
    assert info.value.value == (1, 2)


def test_await_iterator_throw_raises_the_exception(impl):
    it = impl.future().__await__()
    with pytest.raises(KeyError):
        it.throw(KeyError("x"))


# -------------------------------------------------------------- finalisation


def test_unretrieved_exception_is_reported_when_the_future_dies(impl):
    contexts = collect_exception_contexts(impl.loop)
    fut = impl.future()
    exc = ValueError("lost")
    fut.set_exception(exc)
    del fut
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]["message"] == "Future exception was never retrieved"
    assert contexts[0]["exception"] is exc
    assert asyncio.isfuture(contexts[0]["future"])


def test_retrieved_exception_is_not_reported(impl):
    contexts = collect_exception_contexts(impl.loop)
    fut = impl.future()
    fut.set_exception(ValueError())
    fut.exception()
    del fut
    gc.collect()
    assert contexts == []


def test_report_names_the_subclass(impl):
    class MyFuture(impl.Future):
        pass

    contexts = collect_exception_contexts(impl.loop)
    fut = MyFuture(loop=impl.loop)
    fut.set_exception(ValueError())
    del fut
    gc.collect()
    assert contexts[0]["message"] == "MyFuture exception was never retrieved"


def test_report_includes_the_source_traceback_in_debug_mode(impl):
    impl.loop.set_debug(True)
    contexts = collect_exception_contexts(impl.loop)
    fut = impl.future()
    fut.set_exception(ValueError())
    del fut
    gc.collect()
    assert contexts[0]["source_traceback"]


# ------------------------------------------------------------------- objects


def test_futures_support_weak_references(impl):
    fut = impl.future()
    ref = weakref.ref(fut)
    assert ref() is fut
    del fut
    gc.collect()
    assert ref() is None


def test_reference_cycles_through_callbacks_are_collected(impl):
    fut = impl.future()
    fut.add_done_callback(lambda f, fut=fut: None)
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert ref() is None


def test_subclasses_can_add_attributes_and_override_methods(impl):
    class Recording(impl.Future):
        def set_result(self, result):
            self.seen = result
            super().set_result(result * 2)

    fut = Recording(loop=impl.loop)
    fut.set_result(21)
    assert fut.seen == 21
    assert fut.result() == 42


def test_instances_accept_arbitrary_attributes(impl):
    fut = impl.future()
    fut.extra = "x"
    assert fut.extra == "x"


# ------------------------------------------------------------- foreign loops


def test_fastloop_future_awaited_by_an_asyncio_task():
    loop = asyncio.new_event_loop()
    try:
        fut = fastloop.Future(loop=loop)
        loop.call_soon(fut.set_result, "ok")

        async def main():
            return await fut

        task = asyncio.Task(main(), loop=loop)
        assert loop.run_until_complete(task) == "ok"
    finally:
        loop.close()


def test_asyncio_future_awaited_on_a_fastloop_loop():
    loop = fastloop.new_event_loop()
    try:
        fut = asyncio.Future(loop=loop)
        loop.call_soon(fut.set_result, "ok")

        async def main():
            return await fut

        assert loop.run_until_complete(main()) == "ok"
    finally:
        loop.close()


def test_fastloop_loop_create_future_makes_a_fastloop_future():
    loop = fastloop.new_event_loop()
    try:
        assert type(loop.create_future()) is fastloop.Future
    finally:
        loop.close()
