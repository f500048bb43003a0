"""The stream guard: a policy applied to an answer that arrives in chunks, before any of it is sent on.

    guard = StreamGuard(policy)
    for chunk in chunks:
        send(guard.feed(chunk))   # may be "" while the guard holds text back; raises Blocked
    send(guard.close())           # the rest; raises Blocked

The guard holds back the last `window` characters (GUARD_STREAM_WINDOW, 64 by default, raised to the longest
match with spaces inside that the policy's detectors can make: 100 with the injection detectors on), never
cuts inside a word (a token, an address or a key may still be growing: it is held whole, up to
GUARD_STREAM_MAX_HOLD characters), and never releases part of a finding that touches the held text. So a
match that spans chunks is seen whole before any of it leaves, and what the guard releases, put together,
is what `apply(policy, whole_text).text` would be. It scans what it holds once every `step` characters
(GUARD_STREAM_STEP, the window by default: each scan has a fixed cost, so fewer, larger steps cost less
and hold text a little longer), keeping `window` characters already sent as context for the detectors that
read the words before a value ("password =", "Tel."). A blocked finding raises `Blocked` with the verdicts,
before any of it is released; the guard refuses further chunks after that. `Blocked.released` is the checked
text before the blocked finding (up to the last white space before it) that the caller may still send
before its error event, so a reader sees the answer up to where it was cut.
"""

from collections import Counter

from agents.guards.findings import Finding
from agents.guards.policy import Policy, Verdict, findings, redact
from agents.guards.registry import to_original
from agents.guards.text import Text

_SPACES = (" ", "\n", "\t", "\r")


def _setting(name: str, default: int) -> int:
    from django.conf import settings

    try:
        return int(getattr(settings, name, default))
    except Exception:  # settings not configured (a script using the library alone)
        return default


class Blocked(Exception):
    """The text hit a detector whose action is "block": cut the stream with an error event."""

    def __init__(self, verdicts: list[Verdict], released: str = ""):
        super().__init__("The answer was refused by the content policy.")
        self.verdicts = verdicts
        self.released = released  # checked (and redacted) text before the blocked finding, not sent yet


class StreamGuard:
    def __init__(
        self, policy: Policy, *, window: int | None = None, step: int | None = None, max_hold: int | None = None
    ):
        self.policy = policy
        self.window = max(window if window is not None else _setting("GUARD_STREAM_WINDOW", 64), policy.reach, 1)
        self.step = max(step if step is not None else _setting("GUARD_STREAM_STEP", 0) or self.window, 1)
        self.max_hold = max(max_hold if max_hold is not None else _setting("GUARD_STREAM_MAX_HOLD", 8192), self.window)
        self._buffer = ""  # the text from offset self._origin of the stream on
        self._origin = 0
        self._sent = 0  # stream offset up to which the text has been released
        self._counts: Counter = Counter()
        self.blocked = False
        self.closed = False

    @property
    def verdicts(self) -> list[Verdict]:
        """What was found in the text released so far (and in the finding that blocked)."""
        return [Verdict(name, self.policy.action(name), count) for name, count in sorted(self._counts.items())]

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that may be sent now (often "" while text is held back)."""
        self._check_open()
        self._buffer += chunk
        if self._origin + len(self._buffer) - self._sent < self.window + self.step:
            return ""
        return self._release(final=False)

    def close(self) -> str:
        """The end of the stream: the rest of the text, checked and redacted."""
        self._check_open()
        self.closed = True
        return self._release(final=True)

    def _check_open(self):
        if self.blocked:
            raise Blocked(self.verdicts)
        if self.closed:
            raise ValueError("The stream guard is closed.")

    def _release(self, *, final: bool) -> str:
        buffer = self._buffer
        prepared = Text(buffer)
        found = to_original(prepared, findings(self.policy, prepared))
        sent = self._sent - self._origin
        cut = len(buffer) if final else self._cut(buffer, found, sent)
        released = [f for f in found if f.end > sent and f.start < cut]
        blocking = next((f for f in released if self.policy.action(f.detector) == "block"), None)
        if blocking is not None:
            self.blocked = True
            before = max(buffer.rfind(space, sent, blocking.start) for space in _SPACES) + 1
            safe = [f for f in released if f.end <= before]
            self._counts.update(f.detector for f in safe)
            self._counts[blocking.detector] += 1
            shifted = [Finding(f.detector, max(f.start, sent) - sent, f.end - sent) for f in safe]
            raise Blocked(self.verdicts, redact(buffer[sent:before], shifted, self.policy) if before > sent else "")
        self._counts.update(f.detector for f in released)
        shifted = [Finding(f.detector, max(f.start, sent) - sent, min(f.end, cut) - sent) for f in released]
        out = redact(buffer[sent:cut], shifted, self.policy)
        self._sent = self._origin + cut
        keep = max(0, cut - self.window)  # already sent, kept as the context of what comes next
        self._buffer = buffer[keep:]
        self._origin += keep
        return out

    def _cut(self, buffer: str, found: list[Finding], sent: int) -> int:
        """Where the released text ends: `window` characters before the end, moved back to the start of any
        finding or word it would split."""
        end = len(buffer)
        cut = end - self.window
        while cut > sent:
            moved = cut
            for finding in found:
                if finding.start < moved < finding.end:
                    moved = finding.start
            if 0 < moved < end and not buffer[moved - 1].isspace() and not buffer[moved].isspace():
                moved = max(buffer.rfind(space, sent, moved) for space in _SPACES) + 1
            if moved == cut:
                break
            cut = moved
        if end - max(cut, sent) > self.max_hold:  # one endless word: release it in pieces, redacting what is found
            cut = end - self.window
        return max(cut, sent)
