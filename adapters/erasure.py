"""Erase generations: a privacy erase is final for every cache write that read the shopper's data before it.

What vitrine caches per user is derived from data read a moment earlier: the session from a feedback event
just stored, the cached profile from the interactions (or the profile row) just read, the activity count from
an event. If the shopper is erased in between, such a write would put erased data back after the erase had
cleaned up. An in-process lock cannot prevent it: there are two API workers, and profiles are recomputed in the
background.

So each user has an erase generation in Redis (`vitrine:erased:{user_id}`). The erase advances it after its database
part has committed, and deletes the cached keys after that (adapters/privacy.py). A writer reads the generation
before it reads or stores the data its write derives from, and writes only while the generation is unchanged, in one
script that checks it (`write_unless_erased`; where the write is a read-modify-write, as the session's is, the
script also checks that what the writer read is still there: `write_if_unchanged`). Either its write lands before
the advance, and the erase's cleanup removes it; or after, and it is dropped. A writer that starts after the erase
reads the new generation and writes normally: feedback after an erase is a new history. (A writer that read the old
generation just before the erase but stored its event just after it is dropped too; the event itself is kept, and
the next profile recompute uses it.)

A generation that cannot be read (Redis unreachable) is None, and a writer holding None writes nothing: had it
written, nothing would tell an erase's cleanup, already past, to come back for it.

The generation expires `GENERATION_TTL_S` after the erase: far longer than any write in flight can take (a
request's deadline, a profile recompute), and the shopper's id does not stay in Redis for good. The profile
row in PostgreSQL is fenced in the database itself (SqlInteractionLog.save_profile).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from redis.asyncio import Redis

from adapters.cache import Cache
from domain import cache_keys

GENERATION_TTL_S = 24 * 3600


def generation_of(raw: bytes | str | None) -> int:
    """A generation as Redis holds it (none: never erased)."""
    return 0 if raw is None else int(raw)


class EraseGenerations:
    """Read a user's erase generation before reading their data (feedback reads it with the session:
    `CacheSessionStore.snapshot`)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def current(self, user_id: int) -> int | None:
        async def read() -> int | None:
            return generation_of(await self._cache.client.get(cache_keys.erase_generation(user_id)))

        return await self._cache.guarded("erase_generation", read, None)


async def advance(client: Redis, user_id: int) -> None:
    """The erase's move, after its database part and before it deletes cached keys. Raises when Redis does not
    answer: an erase that could not fence off the writes in flight is not done."""
    key = cache_keys.erase_generation(user_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, GENERATION_TTL_S)
        await pipe.execute()


# The fence check and the writes as one script: Redis runs a script whole, with nothing in between, so it is one
# round trip where WATCH, a read and MULTI/EXEC were three. KEYS[1]: the user's erase generation; KEYS[2..]: keys
# the writer read (a read-modify-write), which must still hold what it read. ARGV: the generation the writer read,
# the value it read of each of KEYS[2..] ('' for none), then each command as its length and its words. Returns 1
# when the writes ran, 0 when the user was erased since, -1 when a read key changed since. (The written keys travel
# in ARGV, which is fine on one Redis; Redis Cluster, which vitrine does not use, would want them in KEYS.)
FENCED_WRITES = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
for k = 2, #KEYS do
  if (redis.call('GET', KEYS[k]) or '') ~= ARGV[k] then return -1 end
end
local i = #KEYS + 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


class Fenced(enum.Enum):
    """What became of a fenced script's writes."""

    WRITTEN = 1
    ERASED = 0  # the user was erased since the writer read the generation: nothing written, nothing to redo
    CHANGED = -1  # a key the writer read has changed since: nothing written; read it again and retry


class FencedWrites:
    """The cache writes of one fenced script, queued as Redis commands."""

    def __init__(self) -> None:
        self.commands: list[tuple[str | bytes | int | float, ...]] = []

    def set(self, key: str, value: bytes, *, ex: int) -> None:
        self.commands.append(("SET", key, value, "EX", ex))

    def incr(self, key: str) -> None:
        self.commands.append(("INCR", key))

    def zincrby(self, key: str, amount: float, member: str) -> None:
        self.commands.append(("ZINCRBY", key, amount, member))

    def script_args(self) -> list[str | bytes | int | float]:
        args: list[str | bytes | int | float] = []
        for command in self.commands:
            args += [len(command), *command]
        return args


async def write_if_unchanged(
    cache: Cache, user_id: int, generation: int, writes: FencedWrites, *, read: dict[str, bytes | str | None]
) -> Fenced:
    """Run `writes` only if the user has not been erased since `generation` and each key of `read` still holds the
    value it maps to (None: no value), in one script. Raises what Redis raises: the caller guards it."""
    ran = await cache.script(FENCED_WRITES)(
        keys=[cache_keys.erase_generation(user_id), *read],
        args=[str(generation), *(value or b"" for value in read.values()), *writes.script_args()],
    )
    return Fenced(int(ran))


async def write_unless_erased(
    cache: Cache, user_id: int, generation: int | None, writes: Callable[[FencedWrites], object], *, op: str
) -> bool:
    """Run `writes` (queued on a FencedWrites) only if the user has not been erased since `generation`, in one
    script. False when they did not run: erased meanwhile, generation unknown, or the cache unreachable."""
    if generation is None:
        return False
    queued = FencedWrites()
    writes(queued)

    async def run() -> bool:
        return await write_if_unchanged(cache, user_id, generation, queued, read={}) is Fenced.WRITTEN

    return await cache.guarded(op, run, False)
