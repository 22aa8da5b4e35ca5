"""The calls service: owns every call between two users — its state machine (ringing →
accepted → ended, or rejected / missed / cancelled), the ring timeout, WebRTC signalling
between the parties, and the call history (PROTOCOL §3)."""
