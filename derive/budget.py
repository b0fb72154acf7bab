"""Wall-clock budgets: bounded work for ``check``, ``generate``, ``export``, ``fit``, ``demo``.

A :class:`deadline` block raises :class:`DeadlineExceeded` once it has run ``seconds``; a
:class:`time_budget` is the user-facing deadline of a whole command (``--time-limit``,
``$DEQFAM_TIME_LIMIT``, default :data:`DEFAULT_TIME_LIMIT`) and raises
:class:`BudgetExceeded`, which the CLI reports in one line (exit 3 for ``check``, whose
verdict is then inconclusive; exit 2 elsewhere).

Why this design (and not a child process): the work to bound is pure Python (SymPy, mpmath,
our own series engine), and the callers want Python objects back (a ``Family``, a
``Report``, an imported module), which a child process would have to pickle, and a child
would re-import SymPy and torch (seconds) on every call. So the budget runs in the calling
thread and interrupts it between bytecodes, by three means that nest and agree:

1. **SIGALRM** in the main thread of a POSIX process (an interval timer for the earliest open
   deadline), as before;
2. **an asynchronous exception** (CPython's ``PyThreadState_SetAsyncExc``) raised into any
   other thread by a watchdog timer, so ``deqfam.check(family)`` in a worker thread is
   interrupted inside SymPy/mpmath just like the main thread is;
3. **cooperative checks** (:func:`checkpoint`, one call in each long loop of the series
   engine, the grid evaluations and between admissibility stages), which need no signal and
   also work where neither of the above is available.

Both interrupts raise private ``BaseException`` subclasses, so no library's ``except
Exception`` can swallow them, and they repeat every 50 ms until the owning block exits (in
case a bare ``except:`` swallowed one). Each block converts only *its own* expiry into
:class:`DeadlineExceeded`; an inner, optional step (``optional_step`` in ``derive.spec``)
therefore cannot swallow the expiry of the enclosing command budget. What none of them can
interrupt is one long C call (an exact ``k**(10**9)``); the spec bounds of
``derive.bounds`` make sure no accepted spec asks for one.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import signal
import threading
import time
from contextvars import ContextVar
from typing import Any

#: default wall-clock budget (seconds) of one command (check, generate, export, fit setup, demo)
DEFAULT_TIME_LIMIT = 120.0
#: environment variable overriding DEFAULT_TIME_LIMIT (``inf`` or ``none``: no limit)
TIME_LIMIT_ENV = "DEQFAM_TIME_LIMIT"
#: how often an expired deadline re-raises until its block has exited
_REPEAT_S = 0.05

#: the limit chosen for this context by the CLI's ``--time-limit`` (None: env or default)
_CONFIGURED: ContextVar[float | None] = ContextVar("deqfam_time_limit", default=None)


class DeadlineExceeded(Exception):
    """A :class:`deadline` block ran past its budget (``seconds``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"time limit of {seconds:g} s exceeded")
        self.seconds = seconds


class BudgetExceeded(DeadlineExceeded):
    """A command (``what``) ran past its wall-clock budget of ``seconds``."""

    def __init__(self, seconds: float, what: str) -> None:
        super().__init__(seconds)
        self.what = what
        self.args = (
            f"{what} did not finish within its time limit of {seconds:g} s (raise it with "
            f"--time-limit SECONDS or ${TIME_LIMIT_ENV}; 'inf' for none)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class _Alarm(BaseException):
    """Raised by SIGALRM or :func:`checkpoint` for the expired deadline ``owner``. A
    BaseException, so library ``except Exception`` clauses cannot swallow it."""

    def __init__(self, owner: deadline) -> None:
        super().__init__("deadline")
        self.owner = owner


class _AsyncAlarm(BaseException):
    """Raised asynchronously into a worker thread (no payload: CPython raises the class);
    the outermost expired deadline of that thread owns it."""


_local = threading.local()
_SAVED: dict[str, Any] = {}  # the SIGALRM handler and timer that were there before us


def _stack() -> list[deadline]:
    """This thread's open deadlines, outermost first."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _expired_owner(now: float | None = None) -> deadline | None:
    """The outermost expired deadline of this thread (it wins over inner ones)."""
    now = time.monotonic() if now is None else now
    return next((d for d in _stack() if now >= d.deadline), None)


def checkpoint() -> None:
    """Cooperative check, cheap enough for an inner loop: raise if an open deadline of this
    thread has expired. Call it once per iteration of any loop whose length the spec drives."""
    stack = getattr(_local, "stack", None)
    if stack:
        owner = _expired_owner()
        if owner is not None:
            raise _Alarm(owner)


def _arm() -> None:
    """(Re)arm ITIMER_REAL for the earliest open deadline of the main thread; it repeats every
    50 ms after expiry, in case SymPy swallows the first alarm in a bare ``except:``."""
    active = [d for d in _stack() if d.uses_signal]
    if active:
        left = min(d.deadline for d in active) - time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, max(left, 1e-4), _REPEAT_S)


def _must_not_raise(frame: Any) -> bool:
    """Inside our own bookkeeping, or a garbage-collector callback (which would swallow the
    exception as "Exception ignored")?"""
    codes = _PROTECTED | {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _on_alarm(signum: int, frame: Any) -> None:
    if _must_not_raise(frame):
        signal.setitimer(signal.ITIMER_REAL, 0.01, _REPEAT_S)  # try again in a moment
        return
    owner = _expired_owner()
    if owner is not None:
        raise _Alarm(owner)
    _arm()


def _timer_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in thread ``thread_id`` (None: cancel a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class deadline:
    """Context manager: raise :class:`DeadlineExceeded` if the block runs longer than
    ``seconds`` (``None``/``inf``: no limit). Nests (the outermost expired deadline wins).

    Interrupts pure-Python work (SymPy, mpmath) in any thread: SIGALRM in the main thread,
    a watchdog's asynchronous exception elsewhere, plus :func:`checkpoint` calls. A single
    long C call is only interrupted when it returns. A timer the caller had set is restored.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = math.inf if seconds is None else float(seconds)
        if not self.seconds > 0:
            raise ValueError(f"a time limit must be > 0 seconds, got {seconds!r}")
        self.active = False
        self.uses_signal = False
        self.deadline = math.inf
        self._lock = threading.Lock()
        self._watchdog: threading.Timer | None = None

    def _error(self) -> DeadlineExceeded:
        return DeadlineExceeded(self.seconds)

    def __enter__(self) -> deadline:
        if math.isinf(self.seconds):
            return self
        stack = _stack()
        self.uses_signal = _timer_available()
        if self.uses_signal and not any(d.uses_signal for d in stack):
            _SAVED["handler"] = signal.signal(signal.SIGALRM, _on_alarm)
            _SAVED["timer"] = signal.setitimer(signal.ITIMER_REAL, 0)
            _SAVED["since"] = time.monotonic()
        self.deadline = time.monotonic() + self.seconds
        stack.append(self)
        self.active = True
        if self.uses_signal:
            _arm()
        else:
            self._thread_id = threading.get_ident()
            self._schedule(self.seconds)
        return self

    def _schedule(self, delay: float) -> None:
        self._watchdog = threading.Timer(delay, self._fire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _fire(self) -> None:
        """Watchdog (another thread): raise into the owning thread unless it is inside our
        bookkeeping; repeat until the block has exited."""
        import sys

        with self._lock:
            if not self.active:
                return
            early = self.deadline - time.monotonic()
            if early > 0:  # timers may fire a little early; the owner must be expired
                self._schedule(early)
                return
            frame = sys._current_frames().get(self._thread_id)
            if frame is not None and not _must_not_raise(frame):
                _async_raise(self._thread_id, _AsyncAlarm)
            self._schedule(_REPEAT_S)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if not self.active:
            return False
        owner = _expired_owner() if isinstance(exc, _AsyncAlarm) else None
        with self._lock:
            self.active = False
            if self._watchdog is not None:
                self._watchdog.cancel()
                _async_raise(self._thread_id, None)  # drop one still pending
        stack = _stack()
        stack.remove(self)
        if self.uses_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if any(d.uses_signal for d in stack):
                _arm()
            else:
                _restore_signal()
        if (isinstance(exc, _Alarm) and exc.owner is self) or owner is self:
            raise self._error() from None
        return False


def _restore_signal() -> None:
    """Give back the caller's SIGALRM handler and timer, minus the time we spent."""
    signal.signal(signal.SIGALRM, _SAVED.pop("handler"))
    (delay, interval), since = _SAVED.pop("timer"), _SAVED.pop("since")
    if delay > 0:
        left = max(delay - (time.monotonic() - since), 1e-4)
        signal.setitimer(signal.ITIMER_REAL, left, interval)


_PROTECTED = {
    deadline.__exit__.__code__,
    deadline.__enter__.__code__,
    _arm.__code__,
    _restore_signal.__code__,
}


def resolve_time_limit(seconds: float | str | None = None) -> float:
    """The budget to use: ``seconds`` if given, else the one configured for this context
    (:func:`configured_time_limit`), else ``$DEQFAM_TIME_LIMIT``, else DEFAULT_TIME_LIMIT.
    ``inf``/``none`` means no limit. Raises ValueError for anything but a positive number."""
    if seconds is None:
        seconds = _CONFIGURED.get()
    source = "the time limit"
    if seconds is None:
        seconds, source = os.environ.get(TIME_LIMIT_ENV) or DEFAULT_TIME_LIMIT, f"${TIME_LIMIT_ENV}"
    if isinstance(seconds, str):
        text = seconds.strip().lower()
        if text in ("inf", "none"):
            return math.inf
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{source} must be a number of seconds, got {seconds!r}") from None
    if isinstance(seconds, bool) or not (float(seconds) > 0) or math.isnan(float(seconds)):
        raise ValueError(f"{source} must be a positive number of seconds, got {seconds!r}")
    return float(seconds)


class configured_time_limit:
    """Context manager: make ``seconds`` the default budget of every :class:`time_budget`
    opened in this context (the CLI's ``--time-limit``)."""

    def __init__(self, seconds: float | str | None) -> None:
        self.seconds = resolve_time_limit(seconds)

    def __enter__(self) -> float:
        self._token = _CONFIGURED.set(self.seconds)
        return self.seconds

    def __exit__(self, *exc: Any) -> None:
        _CONFIGURED.reset(self._token)


class time_budget(deadline):
    """The wall-clock budget of one command or API call (``what`` names it in the message):
    ``seconds`` or, when None, :func:`resolve_time_limit`. Raises :class:`BudgetExceeded`."""

    def __init__(self, seconds: float | str | None = None, what: str = "the command") -> None:
        super().__init__(resolve_time_limit(seconds))
        self.what = what

    def _error(self) -> DeadlineExceeded:
        return BudgetExceeded(self.seconds, self.what)
