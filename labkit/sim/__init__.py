"""The deterministic simulator behind run tests."""

from labkit.sim.log import EventLog, LogEvent
from labkit.sim.settings import NetworkSettings, RunSettings, SettingsError
from labkit.sim.simulator import HandlerError, RunawayError, Simulation, SimulationError

__all__ = [
    "EventLog",
    "LogEvent",
    "NetworkSettings",
    "RunSettings",
    "SettingsError",
    "Simulation",
    "SimulationError",
    "HandlerError",
    "RunawayError",
]
