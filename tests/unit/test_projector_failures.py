"""Which PostgreSQL failures are a record's own (set it aside) and which are passing (retry, skip nothing)."""
from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base

from services.projector.consumer import record_fault


def test_values_postgresql_refuses_are_the_records_fault():
    assert record_fault(asyncpg.ProgramLimitExceededError("index row size exceeds maximum")) == "54000"
    assert record_fault(asyncpg.CharacterNotInRepertoireError("invalid byte sequence")) == "22021"
    assert record_fault(asyncpg.CheckViolationError("available_points >= 0")) == "23514"
    # asyncpg refuses an int4 out of range itself, before anything reaches the server.
    assert record_fault(_base.DataError("value out of int32 range")) == "22000"


def test_a_lost_connection_or_a_missing_privilege_is_retried_not_blamed_on_the_record():
    assert record_fault(asyncpg.ConnectionDoesNotExistError("connection was closed")) is None
    assert record_fault(asyncpg.AdminShutdownError("terminating connection")) is None
    assert record_fault(asyncpg.InsufficientPrivilegeError("permission denied")) is None
    assert record_fault(asyncpg.DeadlockDetectedError("deadlock")) is None
    assert record_fault(OSError("connection refused")) is None
