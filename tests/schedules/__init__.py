"""Tests of shared/schedules/: a package, so that its `conftest` helpers are not confused with other folders'."""
