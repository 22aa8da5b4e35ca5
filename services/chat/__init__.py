"""Chat: direct conversations between two users, their messages (stored before they are
acknowledged, numbered gap-free per conversation), delivery/read markers and typing
notices (PROTOCOL §4)."""
