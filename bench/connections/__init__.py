"""Connection benchmark: how many students the stack takes at once, what each costs, and how
fast they all come back when the gateway dies.

    python -m bench.connections --quick                  # N=300 smoke run, about 2 min
    python -m bench.connections --clients 2000 --markdown /tmp/connections.md
    python -m bench.connections --compression            # the same with permessage-deflate

Everything runs on this machine: a private RabbitMQ node, the four services and one gateway
(``bench.openloop.systems.our_system``: production timings, no rate limits), and the load
generator, K worker processes (default 4) each running its share of the N students (``s0`` …)
as ``websockets`` clients on one uvloop. Timestamps are CLOCK_MONOTONIC, shared by all
processes. Measures, in this order, on the same students:

1. Connect storm: the N handshakes are scheduled evenly over ``--ramp`` (1 s), with no cap
   on concurrency. Per student: time from its scheduled start to the ``connected`` frame and
   to the ``mentor_status_snapshot``. A close 1013 is honoured (wait ``retry_after_ms`` from
   the close reason, 1 s without one, plus 0–50 % jitter; then retry) and counted as a retry,
   not a failure; times still run from the first attempt. After 60 s a student gives up.
   Anything else (TCP refused/reset, HTTP refusal, another close code) is a failure.
2. Idle memory: gateway RSS and the broker's memory (``rabbitmqctl status``) before the
   storm and ``--idle`` seconds after it, divided by the students that got their snapshot.
   Run once plain and once with ``--compression`` to see what permessage-deflate costs.
3. Status fan-out: a mentor connects and sends ``--changes`` (5) ``mentor_busy`` with a
   unique ``status_message``, ``--spacing`` (1 s) apart (the stack coalesces a mentor's
   changes within 250 ms); per student until its ``mentor_status_update`` with that tag.
4. Reconnect storms: SIGKILL the gateway, then SIGTERM it (clients get close 1001); each
   time a new gateway is started on the same port once the old process has exited. Every
   student reconnects when its socket drops: after 0–1 s of jitter, retrying a port that
   is not listening (yet) or a close 1013 as above. Times run from the signal.

How to read it: one row per measure, latencies in ms. A student that never made it counts
as infinitely late, so p99 is ∞ as soon as more than 1 % failed (``failures`` says why);
``last`` is the latest student that did make it; for the storm, ``total`` is from the first
scheduled handshake to the last snapshot. The fan-out row gives the medians over the
changes (each change is in the JSON). The note under the tables gives the load average at
start and end (others may share the machine) and the busiest generator worker's CPU: near
1.0 core, the generator itself was part of what got measured. Results go to
``bench/results/connections-<timestamp>.json``; ``--markdown FILE`` writes the tables for
docs/performance.md.

Limits: the generator shares the machine's cores with what it measures; at 5000 it cannot
start every handshake within the 1 s ramp (see "generator start lag", which the latencies
include). A student told to retry later than its 60 s budget gives up at once ("gave up
after …"). Memory per connection is only clean when every student connected: the RSS after
a storm with failures still holds the peak. Phases share the students, so one that leaves
few connected (or a backlog: the run waits up to 30 s for the stack to go quiet) shapes the
next. Compare runs only at similar load averages.
"""
