"""The thin AMQP layer every process uses (aio-pika underneath)."""
