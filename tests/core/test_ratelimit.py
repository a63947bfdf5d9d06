from app.core.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_with_the_wait_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("k") == 1
    clock.now += 0.5
    assert limiter.acquire("k") == 1  # half a token is not a token
    clock.now += 0.5
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == 1


def test_the_wait_reflects_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=1, clock=clock)
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == 10


def test_callers_have_separate_buckets_and_refill_stops_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("b") is None  # another key or address is not affected
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, 1]


def test_memory_is_bounded_by_forgetting_the_least_recently_seen_caller() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, max_buckets=2, clock=clock)
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is None
    assert limiter.acquire("a") == 1  # "a" is now the most recently seen
    assert limiter.acquire("c") is None  # evicts "b"
    assert limiter.acquire("a") == 1  # "a" kept its empty bucket
    assert limiter.acquire("b") is None  # "b" starts over with a full bucket
