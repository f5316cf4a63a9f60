"""Two toy systems for the tour: a metronome and its listener, and a vote count with a bug."""

from dataclasses import dataclass

from labkit import Message, Node, Timer


@dataclass(frozen=True)
class Tick(Message):
    n: int


@dataclass(frozen=True)
class Tock(Message):
    n: int


@dataclass(frozen=True)
class Beat(Timer):
    pass


class Metronome(Node):
    """Sends a Tick to its listener every 10 ms; remembers which were answered."""

    def __init__(self, address, listener):
        super().__init__(address)
        self.listener = listener
        self.sent = 0
        self.answered = set()

    def init(self):
        self.set_timer(Beat(), 10)

    def on_Beat(self, timer):
        self.sent += 1
        self.send(Tick(self.sent), self.listener)
        self.set_timer(timer, 10)

    def handle_Tock(self, message, sender):
        self.answered.add(message.n)


class Listener(Node):
    """Answers each Tick with a Tock."""

    def handle_Tick(self, message, sender):
        self.send(Tock(message.n), sender)


@dataclass(frozen=True)
class Vote(Message):
    pass


class Voter(Node):
    """Sends one Vote to the tally when it starts."""

    def __init__(self, address, tally):
        super().__init__(address)
        self.tally = tally

    def init(self):
        self.send(Vote(), self.tally)


class Tally(Node):
    """Counts the votes it receives. (It has a bug: see the tour.)"""

    def __init__(self, address):
        super().__init__(address)
        self.votes = 0

    def handle_Vote(self, message, sender):
        self.votes += 1
