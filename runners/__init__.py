"""Runners: one interface (base.Runner), one module per way of running a job, a registry by type string."""
