"""CPython's own Future and Task tests, run against fastloop.Future/Task.

The installed ``test.test_asyncio`` suites are written against mixin classes
(``BaseFutureTests``, ``BaseTaskTests``...) that CPython instantiates once per
implementation: ``CTask_CFuture_Tests``, ``PyTask_CFuture_Tests`` and so on.
This module instantiates the same mixins with fastloop's types, mixing them
with asyncio's as test_tasks.py mixes the C and Python ones:

    fastloop Task + fastloop Future   (+ SetMethodsTest, + subclass tests)
    fastloop Task + asyncio Future
    asyncio Task  + fastloop Future

Run it alone with ``python -m unittest tests.cpython.futures_tasks``; the
compatibility runner (tests/cpython/run.py) imports it as ``futures_tasks``.
Tests listed under ``futures_tasks.`` in exclusions.txt are skipped with the
reason given there, so both ways of running agree.
"""

import asyncio
import os
import sys
import unittest
from asyncio import futures, tasks

from test.test_asyncio import test_futures, test_futures2, test_tasks
from test.test_asyncio import utils as test_utils

import fastloop

FLFuture = fastloop.Future
FLTask = fastloop.Task
AsyncioFuture = futures._CFuture if hasattr(futures, '_CFuture') \
    else futures._PyFuture
AsyncioTask = tasks._CTask if hasattr(tasks, '_CTask') else tasks._PyTask

HERE = os.path.dirname(os.path.abspath(__file__))
EXCLUSIONS = os.path.join(HERE, 'exclusions.txt')
PREFIX = 'futures_tasks.'


def tearDownModule():
    # 3.14+ deprecate the public setter; its suites use the private one.
    getattr(asyncio.events, '_set_event_loop_policy',
            asyncio.events.set_event_loop_policy)(None)


# --------------------------------------------------------------------------
# test_futures


class FutureTests(test_futures.BaseFutureTests, test_utils.TestCase):
    cls = FLFuture

    def test_future_del_segfault(self):
        fut = self._new_future(loop=self.loop)
        with self.assertRaises(AttributeError):
            del fut._asyncio_future_blocking
        with self.assertRaises(AttributeError):
            del fut._log_traceback


class SubFutureTests(test_futures.BaseFutureTests, test_utils.TestCase):
    class SubFuture(FLFuture):
        pass

    cls = SubFuture


class FutureDoneCallbackTests(test_futures.BaseFutureDoneCallbackTests,
                              test_utils.TestCase):

    def _new_future(self):
        return FLFuture(loop=self.loop)


class SubFutureDoneCallbackTests(test_futures.BaseFutureDoneCallbackTests,
                                 test_utils.TestCase):

    def _new_future(self):
        class SubFuture(FLFuture):
            pass
        return SubFuture(loop=self.loop)


class FutureInheritanceTests(test_futures.BaseFutureInheritanceTests,
                             test_utils.TestCase):

    def _get_future_cls(self):
        return FLFuture


# --------------------------------------------------------------------------
# test_futures2


class Futures2Tests(test_futures2.FutureTests,
                    unittest.IsolatedAsyncioTestCase):
    cls = FLTask


class FutureReprTests(test_futures2.FutureReprTests):
    """test_futures2's repr test with the loop making fastloop Tasks."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        loop = asyncio.get_running_loop()
        loop.set_task_factory(
            lambda loop, coro, **kw: FLTask(coro, loop=loop, **kw))


# --------------------------------------------------------------------------
# test_tasks


class _TaskTestsMixin:
    """What 3.14+'s BaseTaskTests take from each concrete class: the
    all_tasks()/current_task() to check the tasks with.  asyncio's public
    ones (the C implementation) see any Task, asyncio's or fastloop's."""

    all_tasks = staticmethod(asyncio.all_tasks)
    current_task = staticmethod(asyncio.current_task)


class FLTask_FLFuture_Tests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                            test_tasks.SetMethodsTest,
                            test_utils.TestCase):
    Task = FLTask
    Future = FLFuture

    def test_del__log_destroy_pending_segfault(self):
        async def coro():
            pass
        task = self.new_task(self.loop, coro())
        self.loop.run_until_complete(task)
        with self.assertRaises(AttributeError):
            del task._log_destroy_pending


@test_tasks.add_subclass_tests
class FLTask_FLFuture_SubclassTests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                                    test_utils.TestCase):
    Task = FLTask
    Future = FLFuture


class FLTask_AsyncioFuture_Tests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                                 test_utils.TestCase):
    Task = FLTask
    Future = AsyncioFuture


@test_tasks.add_subclass_tests
class FLTaskSubclass_AsyncioFuture_Tests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                                         test_utils.TestCase):
    Task = FLTask
    Future = AsyncioFuture


class AsyncioTask_FLFuture_Tests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                                 test_utils.TestCase):
    Task = AsyncioTask
    Future = FLFuture


@test_tasks.add_subclass_tests
class AsyncioTask_FLFutureSubclass_Tests(_TaskTestsMixin, test_tasks.BaseTaskTests,
                                         test_utils.TestCase):
    Task = AsyncioTask
    Future = FLFuture


class CurrentLoopTests(test_tasks.BaseCurrentLoopTests, test_utils.TestCase):
    # 3.12+ parametrize the tests by implementation; the public one is it.
    current_task = staticmethod(asyncio.current_task)

    def new_task(self, coro):
        return FLTask(coro, loop=self.loop)


class CurrentLoopOnFastloopTests(CurrentLoopTests):
    """The same on a fastloop Loop, where steps take the C fast path."""

    def setUp(self):
        test_utils.TestCase.setUp(self)
        self.loop = fastloop.new_event_loop()
        self.set_event_loop(self.loop)


class _FastloopGatherMixin:
    """Make the gather tests' loops create fastloop Futures and Tasks."""

    def setUp(self):
        super().setUp()
        for loop in (self.one_loop, self.other_loop):
            loop.create_future = (lambda loop=loop: FLFuture(loop=loop))
            loop.set_task_factory(
                lambda loop, coro, **kw: FLTask(coro, loop=loop, **kw))


class FutureGatherTests(_FastloopGatherMixin, test_tasks.FutureGatherTests):
    pass


class CoroutineGatherTests(_FastloopGatherMixin,
                           test_tasks.CoroutineGatherTests):
    pass


# --------------------------------------------------------------------------
# test_eager_task_factory (3.12+): asyncio.create_eager_task_factory(Task)

if sys.version_info >= (3, 12):
    from test.test_asyncio import test_eager_task_factory as _eager

    class EagerTaskFactoryLoopTests(_eager.EagerTaskFactoryLoopTests,
                                    test_utils.TestCase):
        Task = FLTask

    class NonEagerTaskCountingTests(_eager.BaseNonEagerTaskFactoryTests,
                                    test_utils.TestCase):
        Task = FLTask

    class EagerTaskCountingTests(_eager.BaseEagerTaskFactoryTests,
                                 test_utils.TestCase):
        Task = FLTask


# --------------------------------------------------------------------------
# Exclusions and loading


def _exclusion_reason():
    """A function giving the reason exclusions.txt excludes a test id for,
    or None: the runner's own parser and matching (version and ``asan``
    terms, ``+`` lines), whichever way this module is run."""
    sys.path.insert(0, HERE)
    try:
        import run
    finally:
        sys.path.remove(HERE)
    patterns = run.load_patterns(EXCLUSIONS, need_reason=True, signs='+')

    def reason(short_id):
        ex = run.first_match(patterns, short_id)
        return ex.reason if ex is not None and not ex.include else None
    return reason


def _short_id(test):
    cls = type(test)
    return f'{PREFIX}{cls.__name__}.{test._testMethodName}'


def _iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _iter_tests(t)
        else:
            yield t


TEST_CASES = [
    FutureTests, SubFutureTests, FutureDoneCallbackTests,
    SubFutureDoneCallbackTests, FutureInheritanceTests,
    Futures2Tests, FutureReprTests,
    FLTask_FLFuture_Tests, FLTask_FLFuture_SubclassTests,
    FLTask_AsyncioFuture_Tests, FLTaskSubclass_AsyncioFuture_Tests,
    AsyncioTask_FLFuture_Tests, AsyncioTask_FLFutureSubclass_Tests,
    CurrentLoopTests, CurrentLoopOnFastloopTests, FutureGatherTests,
    CoroutineGatherTests,
]
if sys.version_info >= (3, 12):
    TEST_CASES += [EagerTaskFactoryLoopTests, NonEagerTaskCountingTests,
                   EagerTaskCountingTests]


def load_tests(loader, standard_tests, pattern):
    excluded = _exclusion_reason()
    suite = unittest.TestSuite()
    for cls in TEST_CASES:
        for test in _iter_tests(loader.loadTestsFromTestCase(cls)):
            reason = excluded(_short_id(test))
            if reason is not None:
                # Keep the test's id; run a skip in its place.
                setattr(test, test._testMethodName,
                        unittest.skip(reason)(lambda: None))
            suite.addTest(test)
    return suite


if __name__ == '__main__':
    unittest.main()
