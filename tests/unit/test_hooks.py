"""Lifecycle listeners."""

from shared.platform import hooks


def test_a_listener_class_is_registered_once(monkeypatch):
    monkeypatch.setattr(hooks, "_listeners", [])  # the app's own listeners are not under test here

    class Probe:
        calls = 0

        def status_changed(self, record):
            Probe.calls += 1

        def finished(self, record, result):
            pass

    hooks.add(Probe())
    hooks.add(Probe())  # the app module imported again
    hooks.status_changed(object())
    assert Probe.calls == 1
