"""Network settings: connectivity and delivery-rate precedence, timers, validation."""

from __future__ import annotations

import pytest

from labkit import Address
from labkit.sim import RunSettings, SettingsError

A, B, C = Address("a"), Address("b"), Address("c")


def test_everything_is_connected_by_default() -> None:
    s = RunSettings()
    assert all(s.can_deliver(x, y) for x in (A, B, C) for y in (A, B, C))
    assert s.rate_for(A, B) == 1.0 and s.timers_active(A)


def test_connectivity_precedence_link_sender_receiver_network() -> None:
    s = RunSettings().network_active(False)
    assert not s.can_deliver(A, B)
    s.receiver_active(B, True)
    assert s.can_deliver(A, B) and not s.can_deliver(A, C)
    s.sender_active(A, False)  # sender beats receiver
    assert not s.can_deliver(A, B)
    s.link_active(A, B, True)  # link beats sender
    assert s.can_deliver(A, B) and not s.can_deliver(A, C)
    assert s.can_deliver(C, B)  # receiver on, sender unset


def test_node_active_turns_both_directions_but_links_still_win() -> None:
    s = RunSettings().node_active(B, False)
    assert not s.can_deliver(A, B) and not s.can_deliver(B, A) and s.can_deliver(A, C)
    s.link_active(A, B)
    assert s.can_deliver(A, B) and not s.can_deliver(B, A)
    s.node_active(B, True)
    assert s.can_deliver(B, A)


def test_messages_to_self_are_always_deliverable() -> None:
    s = RunSettings(delivery_rate=0.0).node_active(A, False).network_active(False)
    s.link_active(A, A, False)
    assert s.can_deliver(A, A) and s.rate_for(A, A) == 1.0


def test_partition_and_reconnect() -> None:
    s = RunSettings().partition([A, B], [C])
    assert s.can_deliver(A, B) and s.can_deliver(B, A)
    assert not s.can_deliver(A, C) and not s.can_deliver(C, B)
    s.reconnect()
    assert s.can_deliver(A, C) and s.can_deliver(C, B)


def test_partition_replaces_earlier_connectivity_settings() -> None:
    s = RunSettings().link_active(A, C, True).node_active(B, False)
    s.partition([A, B], [C])
    assert s.can_deliver(A, B) and not s.can_deliver(A, C)


def test_delivery_rate_precedence_link_sender_receiver_network() -> None:
    s = RunSettings(delivery_rate=0.9)
    s.delivery_rate(0.7, receiver=B)
    assert s.rate_for(A, B) == 0.7 and s.rate_for(A, C) == 0.9
    s.delivery_rate(0.5, sender=A)
    assert s.rate_for(A, B) == 0.5 and s.rate_for(C, B) == 0.7
    s.delivery_rate(0.3, link=(A, B))
    assert s.rate_for(A, B) == 0.3 and s.rate_for(A, C) == 0.5 and s.rate_for(B, A) == 0.9
    s.delivery_rate(0.1, node=C)
    assert s.rate_for(C, A) == 0.1 and s.rate_for(B, C) == 0.1 and s.rate_for(A, C) == 0.5
    s.delivery_rate(1.0)  # a network-wide rate clears the specific ones
    assert s.rate_for(A, B) == 1.0 and s.rate_for(C, A) == 1.0


def test_cached_decisions_follow_changes() -> None:
    s = RunSettings()
    assert s.decision(A, B) == (True, 1.0)
    s.partition([A], [B])
    assert s.decision(A, B) == (False, 1.0)
    s.reconnect().delivery_rate(0.25, link=(A, B))
    assert s.decision(A, B) == (True, 0.25)


def test_timer_delivery_per_node_and_global() -> None:
    s = RunSettings().deliver_timers(False, node=A)
    assert not s.timers_active(A) and s.timers_active(B)
    s.deliver_timers(False)
    assert not s.timers_active(B)
    s.deliver_timers(True, node=B)
    assert s.timers_active(B) and not s.timers_active(A)
    s.clear_timer_settings()
    assert s.timers_active(A) and s.timers_active(B)


@pytest.mark.parametrize(
    "action",
    [
        lambda: RunSettings(delivery_rate=1.5),
        lambda: RunSettings(duplication_rate=-0.1),
        lambda: RunSettings().delivery_rate(2, link=(A, B)),
        lambda: RunSettings(latency=(5, 1)),
        lambda: RunSettings().set_latency(-1, 3),
        lambda: RunSettings().set_latency(1.5, 3),
    ],
)
def test_impossible_settings_are_rejected(action) -> None:
    with pytest.raises(SettingsError):
        action()


def test_copy_is_independent() -> None:
    s = RunSettings(delivery_rate=0.5, latency=(2, 9), duplication_rate=0.1).partition([A], [B, C])
    s.delivery_rate(0.2, sender=B)
    t = s.copy()
    assert not t.can_deliver(A, B) and t.rate_for(B, C) == 0.2 and t.latency == (2, 9) and t.duplication == 0.1
    t.reconnect()
    assert t.can_deliver(A, B) and not s.can_deliver(A, B)


def test_every_change_is_reported() -> None:
    seen: list[str] = []
    s = RunSettings()
    s.on_change(seen.append)
    s.partition([A, B], [C]).reconnect().delivery_rate(0.5, node=A).deliver_timers(False, node=B)
    assert seen == ["partition {a, b} | {c}", "reconnect", "delivery rate 0.5 at a", "timers at b off"]
