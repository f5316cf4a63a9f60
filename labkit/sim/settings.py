"""Network and timer settings shared by run tests and search tests.

Connectivity follows DSLabs: a message to self is always delivered; otherwise
the most specific setting wins, in the order link, sender, receiver, whole
network. ``partition(*groups)`` turns the network off and every link inside
each group on. Run tests add unreliability: delivery rates (same precedence),
a latency range and a duplication rate.
"""

from __future__ import annotations

from typing import Callable, Iterable

from labkit.node import Address, LabkitError

__all__ = ["NetworkSettings", "RunSettings", "SettingsError"]


class SettingsError(LabkitError):
    """A setting with an impossible value."""


def _check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise SettingsError(f"a rate must be between 0 and 1, got {rate}")
    return float(rate)


def _names(addresses: Iterable[Address]) -> str:
    return "{" + ", ".join(sorted(a.name for a in addresses)) + "}"


class NetworkSettings:
    """Which messages may be delivered and which nodes' timers fire."""

    def __init__(self) -> None:
        self._network_active = True
        self._links: dict[tuple[Address, Address], bool] = {}
        self._senders: dict[Address, bool] = {}
        self._receivers: dict[Address, bool] = {}
        self._timers_default = True
        self._timers: dict[Address, bool] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._decisions: dict[tuple[Address, Address], tuple[bool, float]] = {}

    # ---- change notification (the simulator logs every change) -------------

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(description)`` after every change."""
        self._listeners.append(listener)

    def _changed(self, description: str) -> None:
        self._decisions.clear()
        for listener in self._listeners:
            listener(description)

    # ---- connectivity ---------------------------------------------------------

    def partition(self, *groups: Iterable[Address]) -> "NetworkSettings":
        """Cut the network into ``groups``: messages flow only inside a group."""
        groups_list = [list(g) for g in groups]
        self._network_active = False
        self._links.clear()
        self._senders.clear()
        self._receivers.clear()
        for group in groups_list:
            for a in group:
                for b in group:
                    self._links[(a, b)] = True
        self._changed("partition " + " | ".join(_names(g) for g in groups_list))
        return self

    def reconnect(self) -> "NetworkSettings":
        """Clear every connectivity setting: all links up."""
        self._network_active = True
        self._links.clear()
        self._senders.clear()
        self._receivers.clear()
        self._changed("reconnect")
        return self

    def link_active(self, sender: Address, receiver: Address, active: bool = True) -> "NetworkSettings":
        self._links[(sender, receiver)] = active
        self._changed(f"link {sender} -> {receiver} {'on' if active else 'off'}")
        return self

    def sender_active(self, address: Address, active: bool = True) -> "NetworkSettings":
        self._senders[address] = active
        self._changed(f"sender {address} {'on' if active else 'off'}")
        return self

    def receiver_active(self, address: Address, active: bool = True) -> "NetworkSettings":
        self._receivers[address] = active
        self._changed(f"receiver {address} {'on' if active else 'off'}")
        return self

    def node_active(self, address: Address, active: bool = True) -> "NetworkSettings":
        """Turn all of a node's sending and receiving on or off (links still win)."""
        self._senders[address] = active
        self._receivers[address] = active
        self._changed(f"node {address} {'on' if active else 'off'}")
        return self

    def network_active(self, active: bool = True) -> "NetworkSettings":
        self._network_active = active
        self._changed(f"network {'on' if active else 'off'}")
        return self

    def can_deliver(self, sender: Address, receiver: Address) -> bool:
        """Whether a message from ``sender`` to ``receiver`` may be delivered now."""
        if sender == receiver:
            return True
        link = self._links.get((sender, receiver))
        if link is not None:
            return link
        flag = self._senders.get(sender)
        if flag is not None:
            return flag
        flag = self._receivers.get(receiver)
        if flag is not None:
            return flag
        return self._network_active

    # ---- timers -----------------------------------------------------------------

    def deliver_timers(self, active: bool = True, node: Address | None = None) -> "NetworkSettings":
        """Turn timer delivery on or off, for one node or (node=None) for all."""
        if node is None:
            self._timers_default = active
            self._timers.clear()
            self._changed(f"timers {'on' if active else 'off'}")
        else:
            self._timers[node] = active
            self._changed(f"timers at {node} {'on' if active else 'off'}")
        return self

    def timers_active(self, node: Address) -> bool:
        return self._timers.get(node, self._timers_default)

    def clear_timer_settings(self) -> "NetworkSettings":
        self._timers_default = True
        self._timers.clear()
        self._changed("timers on")
        return self

    # ---- copies -------------------------------------------------------------------

    def _copy_into(self, other: "NetworkSettings") -> None:
        other._network_active = self._network_active
        other._links = dict(self._links)
        other._senders = dict(self._senders)
        other._receivers = dict(self._receivers)
        other._timers_default = self._timers_default
        other._timers = dict(self._timers)

    def copy(self) -> "NetworkSettings":
        """An independent copy without listeners."""
        new = type(self).__new__(type(self))
        NetworkSettings.__init__(new)
        self._copy_into(new)
        return new


class RunSettings(NetworkSettings):
    """Network settings for run tests: connectivity plus loss, latency and duplication."""

    def __init__(
        self,
        delivery_rate: float = 1.0,
        latency: tuple[int, int] = (1, 5),
        duplication_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self._rate = _check_rate(delivery_rate)
        self._link_rates: dict[tuple[Address, Address], float] = {}
        self._sender_rates: dict[Address, float] = {}
        self._receiver_rates: dict[Address, float] = {}
        self.latency = latency
        self.set_latency(*latency)
        self._duplication = _check_rate(duplication_rate)

    def delivery_rate(
        self,
        rate: float,
        *,
        link: tuple[Address, Address] | None = None,
        sender: Address | None = None,
        receiver: Address | None = None,
        node: Address | None = None,
    ) -> "RunSettings":
        """Set the probability that a message is delivered: for the whole network,
        or for one link, sender, receiver or node (sender and receiver). The most
        specific setting wins: link, then sender, then receiver, then network."""
        rate = _check_rate(rate)
        if link is not None:
            self._link_rates[link] = rate
            where = f" on link {link[0]} -> {link[1]}"
        elif sender is not None:
            self._sender_rates[sender] = rate
            where = f" from {sender}"
        elif receiver is not None:
            self._receiver_rates[receiver] = rate
            where = f" to {receiver}"
        elif node is not None:
            self._sender_rates[node] = rate
            self._receiver_rates[node] = rate
            where = f" at {node}"
        else:
            self._rate = rate
            self._link_rates.clear()
            self._sender_rates.clear()
            self._receiver_rates.clear()
            where = ""
        self._changed(f"delivery rate {rate:g}{where}")
        return self

    def decision(self, sender: Address, receiver: Address) -> tuple[bool, float]:
        """``(can_deliver, delivery_rate)`` for a link, cached until the next change."""
        key = (sender, receiver)
        found = self._decisions.get(key)
        if found is None:
            found = (self.can_deliver(sender, receiver), self.rate_for(sender, receiver))
            self._decisions[key] = found
        return found

    def rate_for(self, sender: Address, receiver: Address) -> float:
        if sender == receiver:
            return 1.0
        rate = self._link_rates.get((sender, receiver))
        if rate is not None:
            return rate
        rate = self._sender_rates.get(sender)
        if rate is not None:
            return rate
        rate = self._receiver_rates.get(receiver)
        if rate is not None:
            return rate
        return self._rate

    def set_latency(self, min_millis: int, max_millis: int) -> "RunSettings":
        """Each message takes a whole number of ms drawn uniformly from the range."""
        if not (isinstance(min_millis, int) and isinstance(max_millis, int)) or min_millis < 0 or min_millis > max_millis:
            raise SettingsError(f"latency must be whole ms with 0 <= min <= max, got ({min_millis}, {max_millis})")
        self.latency = (min_millis, max_millis)
        self._changed(f"latency {min_millis}-{max_millis} ms")
        return self

    def duplication_rate(self, rate: float) -> "RunSettings":
        """The probability that a sent message is delivered twice (each copy independently delayed)."""
        self._duplication = _check_rate(rate)
        self._changed(f"duplication rate {rate:g}")
        return self

    @property
    def duplication(self) -> float:
        return self._duplication

    def copy(self) -> "RunSettings":
        new = RunSettings(self._rate, self.latency, self._duplication)
        self._copy_into(new)
        new._link_rates = dict(self._link_rates)
        new._sender_rates = dict(self._sender_rates)
        new._receiver_rates = dict(self._receiver_rates)
        return new
