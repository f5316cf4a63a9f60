"""Search tests: explicit-state model checking of labkit nodes."""

from labkit.search.strategies import bfs, random_search
from labkit.search.results import Outcome, SearchResult
from labkit.search.settings import SearchSettings
from labkit.search.state import Event, HandlerFailure, NondeterminismError, SearchError, SearchState
from labkit.search.trace import Trace, TraceError

__all__ = [
    "SearchState",
    "SearchSettings",
    "SearchResult",
    "Outcome",
    "Event",
    "HandlerFailure",
    "SearchError",
    "NondeterminismError",
    "Trace",
    "TraceError",
    "bfs",
    "random_search",
]
