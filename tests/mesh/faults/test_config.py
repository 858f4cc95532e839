"""The ``fault`` block's schema: what it takes and what it refuses, naming the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mesh.faults.config import FaultConfig


def test_a_block_reads_durations_and_defaults_percent_to_every_request() -> None:
    config = FaultConfig.model_validate(
        {"delay": {"fixed": "250ms"}, "abort": {"status": 503, "percent": 0.5}}
    )
    assert config.delay is not None and config.delay.fixed == 0.25
    assert config.delay.percent == 100.0
    assert config.abort is not None and config.abort.percent == 0.5
    assert not config.headers and config.max_active is None


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({}, "nothing would be injected"),
        ({"headers": False}, "nothing would be injected"),
        ({"abort": {"status": 200}}, "abort.status"),
        ({"abort": {"status": 600}}, "abort.status"),
        ({"abort": {"status": 503, "percent": 101}}, "abort.percent"),
        ({"delay": {"fixed": "0s"}}, "delay.fixed"),
        ({"delay": {"fixed": "1s", "percent": -1}}, "delay.percent"),
        ({"delay": {"percent": 10}}, "delay.fixed"),
        ({"abort": {"status": 503}, "max_active": 0}, "max_active"),
        ({"abort": {"status": 503}, "percentage": 5}, "percentage"),
    ],
)
def test_a_bad_block_is_refused_at_its_key(block: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        FaultConfig.model_validate(block)
    assert where in str(info.value)


def test_header_control_alone_is_a_block() -> None:
    assert FaultConfig.model_validate({"headers": True}).headers
