"""The WebSocket gateway: authenticates sockets, turns client frames into AMQP commands and AMQP
deliveries back into frames. It holds no business rules."""
