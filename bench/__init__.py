"""Benchmarks of cdp: ``python -m bench ingest`` (see bench/README.md).

Modules (one benchmark or one concern each; ``cdp`` never imports ``bench``):

- ``__main__``: the ``python -m bench`` dispatcher, one subcommand per benchmark.
- ``ingest``: the ingest benchmark's cases, runs and command line (target and source as
  separate processes on loopback).
- ``ingest_scenarios``: the ingest scenarios, goals, modes and the goal judgement.
- ``report``: the ingest benchmark's environment record, Markdown table and JSON.
- ``monitor``: polling a running target's status and /proc counters during a case.
- ``processes``: starting and stopping ``cdp target serve``, logs, ``CaseError``.
- ``procfs``: /proc readings (process and per-thread CPU, I/O, the machine's CPU).
- ``profile``: py-spy profiles of the benchmark's processes and their summary.
- ``suite``: the RPO suite: running and measuring each scenario, the sweep, RTO, CLI.
- ``suite_scenarios``: the suite's named scenarios, the rate sweep, VMs per host.
- ``suite_report``: the suite's Markdown report.
- ``linkproxy``: a shaping TCP proxy (bandwidth, latency, outage) between source and target.
- ``trace``: block traces (MSR, fio) read into the simulator's normalised trace.
- ``capacity``: the sizing model (journal bytes, bandwidth for an RPO) and its CLI.
- ``plot``: PNG plots of RPO over time.
- ``export``: the point-in-time image export benchmark.
- ``rto``: failover RTO against vcsim.
"""
