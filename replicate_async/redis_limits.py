"""Rate limits shared through Redis: every process and machine using one token keeps to them.

Replicate's limits are per API token. Workers that each pace themselves at the full
limit together exceed it N times over and meet 429 storms; so their limiter's state
lives in Redis (or Valkey), where such workers already meet:

- **One round trip an acquire.** A Lua script (``EVALSHA``, ``EVAL`` after
  ``NOSCRIPT``) keeps a GCRA token bucket per lane on Redis' own clock (``TIME``): it
  reserves the request's slot (the next free one; now, when the bucket holds a token)
  and returns how long to wait. The caller sleeps exactly that long, never polling
  Redis. Slots are handed out in the order requests reach Redis: no worker starves.
- **The server's word is shared.** A 429 pushes the shared bucket's next slot past the
  server's delay for every worker; a stated lower limit ("reduced to 6 requests per
  minute") is written beside the bucket and adopted by every acquire while it holds; a
  ``ratelimit-remaining`` lower than the shared state expects pulls it down (sent only
  when surprising, so corrections cost next to no round trips).
- **Keys expire** once the bucket would be full again: an idle token leaves nothing.
- **Redis failing**: ``on_error="local"`` falls back to a local bucket with
  ``local_share`` of the limits (warning once), and goes back to Redis when it answers;
  ``"raise"`` raises :class:`SharedLimiterError` before anything is sent. The limiter
  only gates sending: a Redis outage loses no request and repeats none.

``redis`` (``redis.asyncio``) is imported only when a :class:`RedisRateLimits` is used:
``pip install 'replicate-async[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from typing import Any

from ._clock import Clock, Sleep, Timing
from .errors import SharedLimiterError
from .limiter import RateLimiter
from .protocol.limits import _MIN_RATE_FRACTION as _MIN_RATE_FRACTION
from .protocol.limits import MAX_PAUSE, RateLimits, Ticket, TokenBucket
from .protocol.replies import Outcome

__all__ = ["RedisRateLimits", "SharedLimiterError"]

log = logging.getLogger("replicate_async.limits")

#: how long a Redis call may take before the limiter counts Redis as failing, seconds
REDIS_TIMEOUT = 1.0
#: after a failure, how long the local bucket serves before Redis is tried again, seconds
RETRY_REDIS_AFTER = 1.0
#: the most connections to Redis one limiter opens
REDIS_CONNECTIONS = 16
#: how long a stated (lower) limit is kept before the configured one is tried again
STATED_HOLD = 60.0
#: the least time between two corrections sent for one lane, seconds
_CORRECT_EVERY = 1.0

# Every script starts the same way. KEYS: the lane's bucket, its stated limit. ARGV[1],
# ARGV[2]: the configured rate (per second) and burst, lowered by a stated limit while
# one holds; the time is Redis' own.
_PREAMBLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local stated = redis.call('HMGET', KEYS[2], 'rate', 'burst')
if stated[1] then rate = math.min(rate, tonumber(stated[1])) end
if stated[2] then burst = math.min(burst, tonumber(stated[2])) end
local interval = 1 / rate
local tolerance = (burst - 1) * interval
local held = redis.call('HMGET', KEYS[1], 'tat', 'tol')
local tat = tonumber(held[1]) or now
-- The bucket's burst changed (a stated limit came or went): keep the tokens it holds,
-- rather than hand out (or take away) the difference at once.
if held[2] and tonumber(held[2]) ~= tolerance then tat = tat + (tolerance - tonumber(held[2])) end
-- Store the bucket; it expires a minute after it would be full again.
local function keep(at)
  local fmt = '%.6f'
  redis.call('HSET', KEYS[1], 'tat', string.format(fmt, at), 'tol', string.format(fmt, tolerance))
  redis.call('PEXPIRE', KEYS[1], math.ceil((at - now) * 1000) + 60000)
end
"""

# Reserve the next slot. Returns {wait in microseconds, tokens left after this one
# (negative: requests queued)}.
ACQUIRE = (
    _PREAMBLE
    + """
if tat < now then tat = now end
local slot = tat - tolerance
if slot < now then slot = now end
local next_tat = tat + interval
keep(next_tat)
local left = math.floor((now + tolerance - next_tat) / interval) + 1
return {math.floor((slot - now) * 1000000), left}
"""
)

# ARGV[3]: the pause in seconds: the bucket is empty at its end. ARGV[4..6]: a stated
# rate and burst (0: none), kept ARGV[6] seconds (they apply from the next call on).
PAUSE = (
    """
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', KEYS[2], 'rate', ARGV[4])
  if tonumber(ARGV[5]) > 0 then redis.call('HSET', KEYS[2], 'burst', ARGV[5]) end
  redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[6]) * 1000))
end
"""
    + _PREAMBLE
    + """
local floor = now + tonumber(ARGV[3]) + tolerance
if tat < floor then tat = floor end
keep(tat)
return 1
"""
)

# ARGV[3]: the tokens the server says are left now: the shared bucket is pulled down to
# that (never up).
OBSERVE = (
    _PREAMBLE
    + """
if tat < now then tat = now end
local floor = now + tolerance - (tonumber(ARGV[3]) - 1) * interval
if tat < floor then
  keep(floor)
  return 1
end
return 0
"""
)


class _Scripts:
    """The three scripts, run by SHA (loaded once; sent whole again after NOSCRIPT)."""

    def __init__(self) -> None:
        self.sha = {
            name: hashlib.sha1(text.encode()).hexdigest()
            for name, text in (("acquire", ACQUIRE), ("pause", PAUSE), ("observe", OBSERVE))
        }
        self.text = {"acquire": ACQUIRE, "pause": PAUSE, "observe": OBSERVE}
        #: script calls made (round trips to Redis), by name
        self.calls: dict[str, int] = dict.fromkeys(self.text, 0)

    async def run(self, redis: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        self.calls[name] += 1
        try:
            return await redis.evalsha(self.sha[name], len(keys), *keys, *args)
        except NoScriptError:
            # A restarted (or flushed) Redis forgot it: EVAL sends it whole, and caches it.
            return await redis.eval(self.text[name], len(keys), *keys, *args)


class _RedisLane:
    """One lane whose bucket lives in Redis (see the module); a :class:`Lane` stand-in."""

    __slots__ = (
        "_last_correction",
        "_left",
        "_owner",
        "_replan",
        "_sent",
        "bucket",
        "kind",
        "queued",
    )

    def __init__(self, owner: RedisRateLimits, kind: str, per_minute: float, burst: float):
        self._owner = owner
        self.kind = kind
        #: the configured rate and burst (the poller sizes its share by ``bucket.rate``)
        self.bucket = TokenBucket(per_minute / 60.0, burst, now=0.0)
        self.queued = 0
        self._sent = 0
        self._left: dict[int, float] = {}  # ticket seq -> tokens the acquire said were left
        self._last_correction = -math.inf
        # Set (and replaced) when a 429 moved the shared bucket: sleepers reserve again.
        self._replan = asyncio.Event()

    async def acquire(self) -> Ticket:
        """Reserve a slot in the shared bucket and sleep until it comes (one round trip)."""
        owner = self._owner
        self.queued += 1
        try:
            while True:
                result = await owner._acquire(self)
                if result is None:  # Redis away, on_error="local": the local share serves
                    local = await owner._local_limiter().lane(self.kind).acquire()
                    return Ticket(-1, local.at)  # not ours: no shared count to compare
                wait, left = result
                if wait <= 0 or not await self._interrupted(wait):
                    break
                # A 429 moved the shared bucket while this slept: its slot may be too
                # early now, so it reserves again (the old slot is given up).
        finally:
            self.queued -= 1
        ticket = Ticket(self._sent, owner._clock())
        self._sent += 1
        self._left[ticket.seq] = left
        if len(self._left) > 10_000:  # replies that never came (cancelled requests)
            for seq in list(self._left)[:5_000]:
                del self._left[seq]
        return ticket

    async def _interrupted(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if a 429 cut it short (the slot must be reserved again)."""
        # The injected sleep (fake time in tests) raced against the 429's signal.
        sleeper = asyncio.ensure_future(self._owner._sleep(seconds))
        woken = asyncio.ensure_future(self._replan.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
        return woken.done() and not woken.cancelled()

    def replan(self) -> None:
        """The shared bucket moved (a 429): every sleeper of this lane reserves again."""
        replan, self._replan = self._replan, asyncio.Event()
        replan.set()

    def feedback(self, outcome: Outcome, ticket: Ticket | None = None) -> None:
        """Share what the server said: a 429's pause and stated limit, a low count."""
        owner = self._owner
        shared = ticket is not None and ticket.seq >= 0
        left = self._left.pop(ticket.seq, None) if ticket is not None and shared else None
        # The local share learns too (without the ticket: its count is not ours), so
        # that it is warm if Redis goes away.
        owner._local_limiter().lane(self.kind).feedback(outcome, None)
        if outcome.throttled:
            delay = outcome.server_delay if outcome.server_delay is not None else 1.0
            stated = outcome.stated_limit
            owner._background(owner._pause(self, delay, stated))
            return
        remaining = outcome.remaining
        if remaining is None or left is None or ticket is None:
            return
        now = owner._clock()
        # The server's count when the request arrived, refilled to now.
        count = remaining + self.bucket.rate * max(0.0, now - ticket.at)
        slack = max(2.0, 0.05 * self.bucket.capacity)
        if count < left - slack and now - self._last_correction >= _CORRECT_EVERY:
            self._last_correction = now
            owner._background(owner._observe(self, count))


class RedisRateLimits:
    """Rate limits shared by every process using one API token, kept in Redis.

    Pass it where :class:`RateLimits` (``AsyncReplicate(rate_limits=...)``) or a
    :class:`RateLimiter` (``limiter=``) goes. ``url_or_client``: a ``redis://`` URL (or
    ``rediss://``, ``unix://``) or a ``redis.asyncio.Redis`` client. The limits are
    those of :class:`RateLimits` (per minute); ``burst`` the most requests of a kind at
    once (default: a minute's worth, as Replicate grants), less ``reserve``. Keys are
    ``{key_prefix:digest of the token:lane}`` (a hash tag, for Redis Cluster) and the same
    with ``:stated``: the token itself never reaches Redis.
    ``on_error``: ``"local"`` (fall back to ``local_share`` of the limits in this
    process while Redis is away) or ``"raise"``. See :mod:`replicate_async.redis_limits`.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        key_prefix: str = "replicate_async:limits",
        create_per_minute: float = 600.0,
        other_per_minute: float = 3000.0,
        get_per_minute: float | None = None,
        burst: float | None = None,
        reserve: float = 0.05,
        on_error: str = "local",
        local_share: float = 0.25,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        if on_error not in ("local", "raise"):
            raise ValueError(f'on_error must be "local" or "raise", got {on_error!r}')
        if not 0 < local_share <= 1:
            raise ValueError(f"local_share must be in (0, 1], got {local_share!r}")
        if not 0 <= reserve < 1:
            raise ValueError(f"reserve must be in [0, 1), got {reserve!r}")
        if not isinstance(url_or_client, str) and not hasattr(url_or_client, "evalsha"):
            raise TypeError(
                "RedisRateLimits takes a redis:// URL or a redis.asyncio.Redis client, got "
                f"{type(url_or_client).__name__}"
            )
        get = other_per_minute if get_per_minute is None else get_per_minute
        #: the same limits as plain :class:`RateLimits` (what the client's config shows)
        self.limits = RateLimits(
            create_per_minute=create_per_minute,
            other_per_minute=other_per_minute,
            get_per_minute=get,
            burst=burst,
            reserve=reserve,
        )
        self.key_prefix = key_prefix
        self.on_error = on_error
        self.local_share = local_share
        self.timeout = timeout
        self._source = url_or_client
        self._redis: Any = None
        self._scripts = _Scripts()
        self._token_key: str | None = None
        self._local: RateLimiter | None = None
        self._failed_at = -math.inf
        self._probing = False
        self._warned = False
        self._tasks: set[asyncio.Task[Any]] = set()
        timing = Timing()
        self._clock: Clock = timing.monotonic
        self._sleep: Sleep = timing.sleep
        lanes = {}
        for kind in ("create", "get", "other"):
            per_minute = self.limits.per_minute(kind)
            ceiling = per_minute if burst is None else burst
            lanes[kind] = _RedisLane(self, kind, per_minute, max(1.0, ceiling * (1 - reserve)))
        self.create, self.get, self.other = lanes["create"], lanes["get"], lanes["other"]

    def __repr__(self) -> str:
        where = self._source if isinstance(self._source, str) else type(self._source).__name__
        if isinstance(where, str) and "@" in where:  # a password in the URL stays out
            scheme, _, rest = where.partition("://")
            where = f"{scheme}://…@{rest.rsplit('@', 1)[-1]}"
        return f"RedisRateLimits({where!r}, key_prefix={self.key_prefix!r})"

    # -- what the client uses -------------------------------------------------------------

    def lane(self, kind: str) -> Any:
        """The lane a request draws from: ``"create"``, ``"get"`` or ``"other"``."""
        if kind == "create":
            return self.create
        return self.get if kind == "get" else self.other

    def bind(
        self, api_token: str, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> None:
        """Tie the limits to the token they count (the client does this)."""
        digest = hashlib.sha256(api_token.encode()).hexdigest()[:16]
        if self._token_key is not None and self._token_key != digest:
            raise ValueError(
                "this RedisRateLimits counts another API token's requests: make one per token"
            )
        self._token_key = digest
        if clock is not None:
            self._clock = clock
        if sleep is not None:
            self._sleep = sleep

    @property
    def round_trips(self) -> dict[str, int]:
        """Script calls made to Redis so far, by script (acquire, pause, observe)."""
        return dict(self._scripts.calls)

    async def aclose(self) -> None:
        """Finish the corrections in flight and close the Redis connections this made."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout)
        for task in tasks:
            task.cancel()
        redis, self._redis = self._redis, None
        if redis is not None and isinstance(self._source, str):
            with contextlib.suppress(Exception):
                await redis.aclose()

    # -- Redis ----------------------------------------------------------------------------

    def _keys(self, lane: _RedisLane) -> list[str]:
        if self._token_key is None:
            raise RuntimeError("RedisRateLimits is not bound to a token: pass it to a client")
        # In braces: a hash tag, so that both keys of a lane live on one Cluster slot.
        base = f"{{{self.key_prefix}:{self._token_key}:{lane.kind}}}"
        return [base, f"{base}:stated"]

    def _client(self) -> Any:
        if self._redis is None:
            if isinstance(self._source, str):
                import redis.asyncio

                # Bounded: many requests at once share a few connections (a request
                # finding none free within the timeout goes on as Redis failing).
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    self._source,
                    max_connections=REDIS_CONNECTIONS,
                    timeout=self.timeout,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                )
                # The client owns the pool: closing it closes the connections.
                self._redis = redis.asyncio.Redis.from_pool(pool)
            else:
                self._redis = self._source
        return self._redis

    def _args(self, lane: _RedisLane) -> list[Any]:
        return [repr(lane.bucket.rate), repr(lane.bucket.capacity)]

    async def _call(self, name: str, lane: _RedisLane, extra: list[Any]) -> Any:
        keys = self._keys(lane)
        work = self._scripts.run(self._client(), name, keys, self._args(lane) + extra)
        return await asyncio.wait_for(work, self.timeout)

    async def _acquire(self, lane: _RedisLane) -> tuple[float, float] | None:
        """(seconds to wait, tokens left) from Redis; None: serve from the local share."""
        now = self._clock()
        failing = self._failed_at > -math.inf
        if self.on_error == "local" and failing:
            if now - self._failed_at < RETRY_REDIS_AFTER or self._probing:
                # Redis failed a moment ago, or one request is already finding out
                # whether it is back: the rest go on locally, paying no timeout.
                return None
            self._probing = True
        try:
            wait_us, left = await self._call("acquire", lane, [])
        except (OSError, asyncio.TimeoutError, _redis_errors()) as error:
            self._redis_failed(error)  # raises for on_error="raise"
            return None
        finally:
            if failing:
                self._probing = False
        if self._failed_at > -math.inf:
            self._failed_at = -math.inf
            log.warning("Redis answers again: rate limits are shared again")
        return int(wait_us) / 1e6, float(left)

    def _redis_failed(self, error: BaseException) -> None:  # raises, or None: go local
        if self.on_error == "raise":
            raise SharedLimiterError(
                f"Redis did not answer ({type(error).__name__}: {error}), and it holds the "
                "shared rate limits; nothing was sent. Check that Redis is up, or use "
                'RedisRateLimits(..., on_error="local") to go on with a local share.'
            ) from None
        self._failed_at = self._clock()
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis did not answer (%s: %s): going on with %.0f%% of the rate limits in "
                "this process until it does",
                type(error).__name__,
                error,
                self.local_share * 100,
            )
        return None

    def _local_limiter(self) -> RateLimiter:
        if self._local is None:
            share = self.local_share
            limits = self.limits
            self._local = RateLimiter(
                RateLimits(
                    create_per_minute=limits.create_per_minute * share,
                    other_per_minute=limits.other_per_minute * share,
                    get_per_minute=limits.get_per_minute * share,
                    burst=None if limits.burst is None else max(1.0, limits.burst * share),
                    reserve=limits.reserve,
                ),
                clock=self._clock,
                sleep=self._sleep,
            )
        return self._local

    async def _pause(
        self, lane: _RedisLane, seconds: float, stated: tuple[float, float | None] | None
    ) -> None:
        rate = 0.0 if stated is None else stated[0] / 60.0
        if rate:
            # No lower than the local limiter would go: a stated 0 must not stop everything.
            rate = max(rate, lane.bucket.rate * _MIN_RATE_FRACTION)
        burst = 0.0 if stated is None or stated[1] is None else max(1.0, float(stated[1]))
        # Capped, as the local limiter caps it: one absurd Retry-After must not stop every
        # worker for days.
        seconds = min(MAX_PAUSE, max(0.0, seconds))
        await self._call("pause", lane, [repr(seconds), repr(rate), repr(burst), repr(STATED_HOLD)])
        lane.replan()

    async def _observe(self, lane: _RedisLane, count: float) -> None:
        await self._call("observe", lane, [repr(max(0.0, count))])

    def _background(self, work: Any) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as error:  # a correction that did not land: the next will
                log.debug("a shared rate-limit correction failed: %s", error)

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _redis_errors() -> type[BaseException]:
    from redis.exceptions import RedisError

    return RedisError
