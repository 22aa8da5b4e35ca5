"""What every service process shares: the consume loop, the ack policy and the outbox."""
