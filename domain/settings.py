"""Settings, read once from the environment (and an optional .env file) and validated.

Names follow the seed design (`API_*`, `DATABASE_URL`, `REDIS_URL`, `ML_MODEL_VERSION`, `FAISS_INDEX_PATH`).
Leaving `DATABASE_URL` unset selects the embedded default, a SQLite file under `VITRINE_DATA_DIR`; leaving
`REDIS_URL` unset selects an in-process cache. `get_settings()` is cached; tests call `get_settings.cache_clear()`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_KEYS = {"your-api-key-here", "changeme", "secret", ""}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- server -------------------------------------------------------------------------------------------
    api_host: str = "0.0.0.0"
    api_port: int = Field(3000, ge=1, le=65535)
    # More than one needs Redis, where the workers' shared state lives (sessions, caches, rate limits). On two
    # cores a second worker halves the p95s of a wave of simultaneous requests but cut uncached-search saturation
    # by more than half (loadtests/README.md): pick it for bursty traffic on a machine with cores to spare.
    api_workers: int = Field(1, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Field(Path("var"), alias="VITRINE_DATA_DIR")

    # --- storage ------------------------------------------------------------------------------------------
    database_url: str | None = None
    db_pool_size: int = Field(20, ge=1, le=500)
    db_max_overflow: int = Field(10, ge=0, le=500)
    redis_url: str | None = None
    # Redis must never hold a request up: past this, the request goes on without the cache.
    redis_timeout_s: float = Field(0.25, gt=0, le=10)

    # --- cache --------------------------------------------------------------------------------------------
    api_enable_cache: bool = True
    api_cache_ttl_search: int = Field(300, ge=1)
    api_cache_ttl_recommend: int = Field(120, ge=1)
    api_cache_ttl_product: int = Field(3600, ge=1)
    cache_ttl_user_embedding: int = Field(1800, ge=1)
    cache_ttl_query_embedding: int = Field(7200, ge=1)

    # --- access -------------------------------------------------------------------------------------------
    api_require_key: bool = False
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- storefront page ----------------------------------------------------------------------------------
    # Folders whose image files may be served as product photos (a feed's local image paths); comma-separated.
    # Unset: local paths are never served and products show a placeholder.
    catalog_image_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # --- edge (adapters/edge.py): operator routes, CORS, body size, rate limits, in-flight bound ------------
    # Operator keys (same X-API-Key header) guard the routes with shoppers' data or that change state.
    operator_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # none: no CORS headers
    api_max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    api_max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # Per client (API key, or address when keys are off), shared by all workers through Redis; off when unset.
    rate_limit_per_s: float | None = Field(None, gt=0)
    rate_limit_burst: int | None = Field(None, ge=1)  # default: one second's worth of requests
    # Past this many requests at once, a worker answers 503 at once. Well above a 50-request burst.
    api_max_in_flight: int = Field(256, ge=1)
    # When requests arrive together, a request's first runner call waits up to this long for the worker's other
    # requests to get past their cache lookups (adapters/cheap_first.py): a wave's cached answers leave first.
    # 0: no waiting, asyncio's own order.
    api_cheap_first_hold_ms: int = Field(50, ge=0, le=1000)
    # Search, recommend and feedback answered by the edge's last middleware, not BentoML's per-request dispatch
    # (adapters/fast_lane.py): the same handlers, less CPU on the worker's loop. false: every route BentoML's.
    api_fast_lane: bool = True
    # A runner call gives up past its deadline, and a runner that fails or goes silent is skipped until a probe
    # in the background gets an answer (adapters/deadline.py): a dead runner costs the requests in flight this
    # much and the rest nothing; text search then answers from its keyword leg, the rest 503 retryable. Above the
    # encoder's batching latency on a busy machine.
    encoder_deadline_s: float | None = Field(0.8, gt=0)
    index_deadline_s: float | None = Field(0.8, gt=0)

    # --- model and index ----------------------------------------------------------------------------------
    # The encoder is `ENCODER_MODEL_NAME:ML_MODEL_VERSION` in the BentoML model store; "latest" is the model
    # imported last.
    encoder_model_name: str = "vitrine-encoder"
    ml_model_version: str = "latest"
    encoder_device: Literal["auto", "cpu", "cuda"] = "auto"
    faiss_index_path: Path | None = None
    # Exact (flat) search below this many products, HNSW above it.
    index_exact_threshold: int = Field(50_000, ge=1)
    index_reload_interval_s: float = Field(5.0, gt=0)
    # False: the index is a BentoML service of its own (deployed and scaled on its own; on one machine its FAISS
    # work runs on another core than the API's event loop). True: each API worker holds the index itself
    # (memory-mapped, no hop; less CPU per search, but on the API's loop). README "Topology": which when.
    index_in_process: bool = False

    # --- adaptive batching --------------------------------------------------------------------------------
    # BentoML's max_latency_ms is also a shedding deadline: a request that would wait longer is answered 503.
    # It must sit well above one full batch's run time on the hardware (ViT-B-32 text, batch 32: ~0.4 s on
    # this 2-core CPU), or a burst turns into errors instead of a queue.
    encoder_max_batch_size: int = Field(32, ge=1, le=1024)
    encoder_max_latency_ms: int = Field(1000, ge=1)
    index_max_batch_size: int = Field(64, ge=1, le=4096)
    index_max_latency_ms: int = Field(500, ge=1)
    encoder_workers: int = Field(1, ge=1, le=16)
    # On CPU, an open_clip text tower's projections in int8 (2.5-3.5x faster for ViT-B-32), kept only where
    # its vectors stay within cosine 0.99 of float32's at load (runners/encoder_model.py).
    encoder_int8_text: bool = True
    # Per API worker and runner: a request's encoder or index call goes out at once while fewer than this many
    # are out; requests arriving meanwhile share the next call (adapters/coalesce.py InFlightBatcher). 0: one
    # call per request (README "Runner calls shared under load").
    runner_calls_in_flight: int = Field(1, ge=0, le=64)
    # runners/batching.py: "vitrine" holds a batch only when the arrival rate says it will fill, and never after
    # a burst (BentoML #3630/#3664); "stock" leaves BentoML's dispatcher as it is (for A/B runs).
    batching_policy: Literal["vitrine", "stock"] = "vitrine"
    runner_access_log: bool = False  # BentoML's access log in the encoder and index services

    # --- learning from the shop (domain/click_model.py) ----------------------------------------------------
    # What shoppers chose after a query (feedback with context 'search' and its `query`) raises those products
    # in hybrid search. Each API worker reads the last `window_days` of such events every `refresh_s`.
    search_learning: bool = True
    search_learning_window_days: float = Field(90.0, gt=0)
    search_learning_refresh_s: float = Field(300.0, ge=1)

    # --- monitoring ---------------------------------------------------------------------------------------
    slow_query_ms: float = Field(300.0, gt=0)

    @field_validator("api_keys", "operator_keys", "api_cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("catalog_image_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(root.strip()) for root in value.split(",") if root.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.split(":///", 1)[1]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("DATABASE_URL must be postgresql+asyncpg://... or sqlite+aiosqlite:///...")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be redis://..., rediss://... or unix://...")
        return value

    @property
    def resolved_rate_limit_burst(self) -> int:
        return self.rate_limit_burst or max(1, round(self.rate_limit_per_s or 1))

    @model_validator(mode="after")
    def _shared_state_for_workers(self) -> Settings:
        if self.api_workers > 1 and self.redis_url is None:
            raise ValueError(
                "API_WORKERS > 1 needs REDIS_URL: without Redis each worker keeps its own sessions, caches and rate"
                " limits, and a shopper's next request may reach a worker that never saw their last event"
            )
        return self

    @model_validator(mode="after")
    def _keys_when_required(self) -> Settings:
        if self.api_require_key:
            real = [key for key in self.api_keys if key.lower() not in PLACEHOLDER_KEYS]
            if not real:
                raise ValueError("API_REQUIRE_KEY is on but API_KEYS holds no real key")
        return self

    # --- derived ------------------------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'vitrine.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_index_path(self) -> Path:
        return (self.faiss_index_path or self.data_dir / "index").resolve()

    @property
    def encoder_model_tag(self) -> str:
        return f"{self.encoder_model_name}:{self.ml_model_version}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
