"""Churn soak: memory leaks and unbounded growth that no short test sees.

    python -m bench.soak --quick                       # 6 rounds of 20, well under a minute
    python -m bench.soak --clients 100 --rounds 300    # 30,000 connections, about 10-20 min
    python -m bench.soak --minutes 60 --socketio       # the same through /socket.io/

Starts a broker (unless IM_AMQP_URL answers) and one stack as the benchmarks do
(``bench.openloop.systems.our_system``: production timings, no rate limits), then runs rounds
until ``--rounds`` or ``--minutes``, whichever comes first. In a round ``--clients`` fresh
students connect at once over /ws (or Socket.IO), pair up and each send their partner one
chat message; each receipts what it receives (message_delivered), types, pings, and all
leave. Every ``--sample-every`` rounds, and at the start and the end, it reads the RSS of the
gateway, each service and the broker (beam.smp), and the size of chat's SQLite database and
WAL. It prints the samples and, per process, the RSS after warm-up (10 % of the rounds), at
the end, its maximum and its growth in MiB per 10,000 connections (least squares over the
second half of the samples), and writes ``bench/results/soak-<timestamp>.json``.

A slope that stays after 30,000+ connections is a leak; a cache that settles shows a slope
that falls from the early half to the late one. See bench/soak/README.md for the method.
Exit status 1 when a message was lost, an error frame or a client failure was seen, or a
process of the stack exited.
"""
