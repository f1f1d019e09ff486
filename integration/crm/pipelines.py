"""The location's pipelines and their stages (`GET /opportunities/pipelines`), for the CRM follow-up, cached
apart from the send's location profile.

The send never waits on this list. The follow-up (after the text) reads it for the opportunity and its
stage moves, and fetches it again once it is `max_age` old (10 min): HighLevel sends no webhook when a
pipeline changes, so age is the only signal. The settings page stores what it just listed, so a pipeline
picked there minutes after it was created in HighLevel is known to the follow-up at once.

One reader before the send: the existing-customer check ignores opportunities in the missed-call pipeline
by name (integration.textback.customers). It takes the names at any age up to the hard TTL, and asks
HighLevel only when an open opportunity sits in a pipeline the cached list cannot name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from redis import Redis

from integration.textback.cache import CacheRead, RevalidatingCache

__all__ = ["MAX_AGE_SECONDS", "PipelineDirectory", "Pipelines"]

MAX_AGE_SECONDS = 600
HARD_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class PipelineDirectory:
    """A location's pipelines: id -> name in HighLevel's order, and each one's (stage id, stage name) by position."""

    location_id: str
    names: Mapping[str, str] = field(default_factory=dict)
    stages: Mapping[str, Sequence[Sequence[str]]] = field(default_factory=dict)

    @classmethod
    def from_api(cls, location_id: str, pipelines: Iterable[Mapping]) -> PipelineDirectory:
        listed = [p for p in pipelines if isinstance(p, Mapping) and p.get("id")]
        return cls(location_id=location_id,
                   names={str(p["id"]): str(p.get("name") or "") for p in listed},
                   stages={str(p["id"]): _stages(p) for p in listed})

    def to_dict(self) -> dict:
        return {"location_id": self.location_id, "names": dict(self.names),
                "stages": {key: [list(stage) for stage in value] for key, value in self.stages.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> PipelineDirectory:
        return cls(location_id=str(data["location_id"]), names=dict(data.get("names") or {}),
                   stages={key: [tuple(stage) for stage in value] for key, value in (data.get("stages") or {}).items()})


def _stages(pipeline: Mapping) -> list[tuple[str, str]]:
    """A pipeline's stages as (id, name), by position (HighLevel leaves the order of the list open)."""
    stages = [s for s in pipeline.get("stages") or [] if isinstance(s, Mapping) and s.get("id")]

    def position(pair: tuple[int, Mapping]) -> tuple[float, int]:
        index, stage = pair
        value = stage.get("position")
        return (value if isinstance(value, int | float) and not isinstance(value, bool) else index), index

    ordered = sorted(enumerate(stages), key=position)
    return [(str(stage["id"]), str(stage.get("name") or "")) for _, stage in ordered]


class Pipelines:
    """Pipeline directories from Redis, else from HighLevel.

    Args:
        client: the GHLClient (get_pipelines).
        redis: where directories are cached; None disables the cache.
        max_age: the follow-up fetches a directory again once it is this many seconds old.
        hard_ttl: Redis drops a directory after this many seconds.
        clock: wall-clock seconds.
    """

    def __init__(self, *, client, redis: Redis | None, max_age: int = MAX_AGE_SECONDS,
                 hard_ttl: int = HARD_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.max_age = max_age
        self.clock = clock
        self.cache = RevalidatingCache(redis, prefix="textback:pipelines", hard_ttl=hard_ttl, clock=clock)

    def get(self, location_id: str) -> PipelineDirectory:
        """For the follow-up: the cached directory while younger than `max_age`, else HighLevel's now.

        Raises:
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        read = self.cache.read(location_id)
        cached = self._directory(read)
        if cached is not None and read.entry.age(self.clock()) < self.max_age:
            return cached
        return self.fetch(location_id, after=read)

    def names(self, location_id: str, pipeline_ids: Iterable[str]) -> Mapping[str, str]:
        """Pipeline names covering `pipeline_ids`: cached at any age when it names them all, else fetched.

        Raises:
            GHLError, TokenUnavailable: HighLevel could not be asked.
        """
        wanted = {str(p) for p in pipeline_ids if p}
        read = self.cache.read(location_id)
        cached = self._directory(read)
        if cached is not None and wanted <= set(cached.names):
            return cached.names
        return self.fetch(location_id, after=read).names

    def fetch(self, location_id: str, *, after: CacheRead | None = None) -> PipelineDirectory:
        after = after if after is not None else self.cache.read(location_id)
        started = self.clock()
        return self._store(location_id, self.client.get_pipelines(location_id), after=after, started=started)

    def store(self, location_id: str, pipelines: Iterable[Mapping], *, listed_at: float) -> PipelineDirectory:
        """Cache a list read elsewhere (the settings page), read starting at `listed_at`."""
        return self._store(location_id, pipelines, after=self.cache.read(location_id), started=listed_at)

    def _store(self, location_id: str, pipelines: Iterable[Mapping], *, after: CacheRead,
               started: float) -> PipelineDirectory:
        directory = PipelineDirectory.from_api(location_id, pipelines)
        self.cache.put(location_id, directory.to_dict(), after=after, fetched_at=started)
        return directory

    @staticmethod
    def _directory(read: CacheRead) -> PipelineDirectory | None:
        if read.entry is None:
            return None
        try:
            return PipelineDirectory.from_dict(read.entry.value)
        except (KeyError, TypeError, ValueError):
            return None
