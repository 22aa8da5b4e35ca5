"""Open-loop benchmark: our stack and a python-socketio + RabbitMQ peer, side by side.

Senders emit on a schedule fixed before the step starts and never wait for replies; every
latency is measured from the *scheduled* send time, so a system that falls behind is charged
for the whole delay (no coordinated omission). See ``python -m bench.openloop --help``.
"""
