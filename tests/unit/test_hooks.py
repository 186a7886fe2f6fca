"""Lifecycle listeners, and the registry behind them and the access delegates (`shared.platform.lazy.Plugins`)."""

import sys
import threading
import types

import pytest

from shared.platform import hooks, lazy
from shared.platform.lazy import Plugins


class Probe:
    calls = 0

    def status_changed(self, record):
        Probe.calls += 1

    def finished(self, record, result):
        pass


def test_a_listener_class_is_registered_once(monkeypatch):
    monkeypatch.setattr(hooks, "_listeners", Plugins())  # the app's own listeners are not under test here
    Probe.calls = 0
    hooks.add(Probe())
    hooks.add(Probe())  # the app module imported again
    hooks.status_changed(object())
    assert Probe.calls == 1


@pytest.fixture
def plugin_module(monkeypatch):
    """A module holding a listener class, importable by name."""
    module = types.ModuleType("plugin_probe_module")
    module.Listener = type("Listener", (Probe,), {})
    monkeypatch.setitem(sys.modules, "plugin_probe_module", module)
    return module


def test_a_named_listener_is_loaded_at_the_first_status_change_and_only_once(monkeypatch, plugin_module):
    monkeypatch.setattr(hooks, "_listeners", Plugins())
    Probe.calls = 0
    hooks.add("plugin_probe_module:Listener")
    hooks.add("plugin_probe_module:Listener")  # the app imported twice
    assert hooks._listeners._objects == []  # nothing loaded until a status changes
    hooks.status_changed(object())
    hooks.status_changed(object())
    assert Probe.calls == 2
    assert [type(o).__name__ for o in hooks._listeners.all()] == ["Listener"]


def test_named_plugins_load_once_when_many_threads_ask_at_once(plugin_module):
    plugins = Plugins()
    plugins.add("plugin_probe_module:Listener")
    seen, barrier = [], threading.Barrier(8)

    def ask():
        barrier.wait()
        seen.append(len(plugins.all()))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [1] * 8


def test_a_spec_without_an_attribute_is_refused():
    with pytest.raises(ValueError, match="module:attribute"):
        lazy.resolve("shared.platform.hooks")


def test_a_lazy_module_imports_on_first_read_and_passes_writes_through(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    proxy = lazy.module("colorsys")
    assert "colorsys" not in sys.modules and "not loaded" in repr(proxy)
    assert proxy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    monkeypatch.setattr(proxy, "ONE_THIRD", 0.5)
    assert sys.modules["colorsys"].ONE_THIRD == 0.5
