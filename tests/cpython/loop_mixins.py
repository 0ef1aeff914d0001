"""CPython's loop-parametrised test_asyncio classes, run on the target loop.

Several test_asyncio modules write their tests once, as a mixin, and then
build one concrete TestCase per stock loop (``SelectEventLoopTests`` with
``create_event_loop()`` returning ``asyncio.SelectorEventLoop(...)``, and so
on).  Those stock classes exercise asyncio's own SelectorEventLoop whatever
policy is installed, so for fastloop we build the same thing once more: a
subclass of the module's always-present selector class whose loop factory
returns the loop under test.  Subclassing the selector class (rather than
re-combining the mixins) keeps the module's own decorators, per-platform
overrides and extra tests, exactly as the stock class runs them.

The stock classes themselves are listed in exclusions.txt (they test asyncio's
SelectorEventLoop, not the loop under test).

Each generated class reports under its source module, e.g.
``test_events.LoopEventLoopTests.test_call_later``, whichever loop runs it.
"""

import asyncio
import importlib
import unittest
from unittest import mock

PACKAGE = 'test.test_asyncio'

# (module, stock selector class to derive from, factory method, new name)
MIXINS = [
    ('test_events', 'SelectEventLoopTests', 'create_event_loop',
     'LoopEventLoopTests'),
    ('test_sock_lowlevel', 'SelectEventLoopTests', 'create_event_loop',
     'LoopSockTests'),
    ('test_sendfile', 'SelectEventLoopTests', 'create_event_loop',
     'LoopSendfileTests'),
    ('test_server', 'SelectorStartServerTests', 'new_loop',
     'LoopStartServerTests'),
    ('test_sslproto', 'SelectorStartTLSTests', 'new_loop',
     'LoopStartTLSTests'),
    ('test_buffered_proto', 'BufferedProtocolSelectorTests', 'new_loop',
     'LoopBufferedProtocolTests'),
]

# Stock classes whose setUp() builds ``asyncio.SelectorEventLoop()`` itself,
# with no factory method to override, but whose tests use the public loop
# API: the generated subclass runs that setUp with
# ``asyncio.SelectorEventLoop`` standing for the loop under test.
# (module, stock class, new name)
SETUP_SWAPS = [
    ('test_unix_events', 'SelectorEventLoopUnixSocketTests',
     'LoopUnixSocketTests'),
]

# Stock classes that run asyncio's ``BaseEventLoop()`` with a mocked
# ``_selector`` -- a loop that never polls -- to test public behaviour
# (asyncio.run, Runner, async with on locks, coroutine wrappers).  The
# generated subclass gives them the loop under test instead, through a
# per-module hook below.  (module, stock classes, hook)
MOCK_LOOP_SWAPS = [
    ('test_runners', ['RunTests', 'RunnerTests'], '_runners_hook'),
    ('test_pep492', ['LockTests', 'StreamReaderTests', 'CoroutineTests'],
     '_pep492_hook'),
]


def _runners_hook(base, loop_factory):
    # BaseTest.new_loop() is the factory; its tearDown checks that
    # asyncio.run() closed the loop and ran loop.shutdown_asyncgens().
    def new_loop(self):
        loop = loop_factory()
        loop.shutdown_ag_run = False
        real_shutdown_asyncgens = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real_shutdown_asyncgens()
        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop
    return {'new_loop': new_loop}


def _pep492_hook(base, loop_factory):
    # BaseTest.setUp() builds the mocked loop inline: replace that setUp with
    # the same steps on the loop under test.
    from test.test_asyncio import utils as test_utils

    def setUp(self):
        test_utils.TestCase.setUp(self)
        self.loop = loop_factory()
        self.set_event_loop(self.loop)
    return {'setUp': setUp}


def modules():
    """Names of the test_asyncio modules that get a generated class."""
    return sorted({m for m, *_ in MIXINS + SETUP_SWAPS + MOCK_LOOP_SWAPS})


def classes_for(module_name, loop_factory):
    """Return the generated TestCase classes for one test_asyncio module.

    ``loop_factory()`` must return a new, not-running event loop of the kind
    under test.  The classes are given the source module as ``__module__`` so
    unittest ids (and so exclusions, the gate and the results table) name them
    ``<module>.<Class>.<test>``.
    """
    out = []
    for mod_name, base_name, factory_attr, new_name in MIXINS:
        if mod_name != module_name:
            continue
        mod = importlib.import_module(f'{PACKAGE}.{mod_name}')
        base = getattr(mod, base_name, None)
        if base is None:
            raise RuntimeError(
                f'{mod_name}.{base_name} not found: the stock class this '
                f'generated class derives from has moved; update MIXINS')

        def make_loop(self, _factory=loop_factory):
            return _factory()

        cls = type(new_name, (base,), {
            factory_attr: make_loop,
            '__module__': mod.__name__,
            '__qualname__': new_name,
            '__doc__': f'{base_name} run on the loop under test.',
        })
        if not issubclass(cls, unittest.TestCase):
            raise RuntimeError(f'{mod_name}.{base_name} is not a TestCase')
        out.append(cls)
    for mod_name, base_name, new_name in SETUP_SWAPS:
        if mod_name != module_name:
            continue
        mod = importlib.import_module(f'{PACKAGE}.{mod_name}')
        base = getattr(mod, base_name, None)
        if base is None:
            raise RuntimeError(f'{mod_name}.{base_name} not found; update '
                               f'SETUP_SWAPS')

        def setUp(self, _base=base, _factory=loop_factory):
            def selector_loop(*args, **kwargs):
                return _factory()
            with mock.patch.object(asyncio, 'SelectorEventLoop',
                                   selector_loop):
                _base.setUp(self)

        out.append(type(new_name, (base,), {
            'setUp': setUp,
            '__module__': mod.__name__,
            '__qualname__': new_name,
            '__doc__': f'{base_name} run on the loop under test.',
        }))
    for mod_name, base_names, hook_name in MOCK_LOOP_SWAPS:
        if mod_name != module_name:
            continue
        mod = importlib.import_module(f'{PACKAGE}.{mod_name}')
        for base_name in base_names:
            base = getattr(mod, base_name, None)
            if base is None:
                raise RuntimeError(f'{mod_name}.{base_name} not found; '
                                   f'update MOCK_LOOP_SWAPS')
            attrs = globals()[hook_name](base, loop_factory)
            new_name = 'Loop' + base_name
            attrs.update({
                '__module__': mod.__name__,
                '__qualname__': new_name,
                '__doc__': f'{base_name} run on the loop under test.',
            })
            out.append(type(new_name, (base,), attrs))
    return out
