"""What vitrine sets on the BentoML services it runs, in one place (the facts behind each are in loadtests/README.md).

- `RUNNER_CONNECTION` is read by the *caller's* client for a service: BentoML's default recycles the connection
  every 100 requests, which under load turned into bursts of 500s.
- `fix_output_media_types`: for an API whose output is root-typed (a list or an array, as every batchable API's
  is), BentoML 1.4 builds the output model's JSON schema again on every response just to pick the response's
  Content-Type (`IOMixin.mime_type`), unless the output spec names its media type. The py-spy profile of the
  index service put that at 9% of its samples. The caller's client decodes with its own serde, whatever the
  header says, so naming it changes nothing on the wire.
"""

from __future__ import annotations

from typing import Any

RUNNER_CONNECTION: dict[str, Any] = {"max_requests": 1_000_000_000, "max_age": 86400.0}


def fix_output_media_types(service: Any) -> None:
    """Name the media type of every API's output, so BentoML stops deriving it from the schema per response."""
    for api in service.apis.values():
        if api.output_spec is not None and api.output_spec.media_type is None:
            api.output_spec.media_type = "application/json"
