"""What ``GET /api/help/templates`` answers: the subjects, urgencies (label, colour) and
quick-action texts a client offers as one-tap help requests. Product text, not protocol: the
shape is :class:`shared.protocol.help.HelpTemplates`, the content lives here, with the one
process that serves it."""

from __future__ import annotations

from shared.protocol.help import HelpTemplates, QuickAction, UrgencyTemplate

HELP_TEMPLATES = HelpTemplates(
    subjects=["Math", "Programming", "Science", "General"],
    urgencies=[
        UrgencyTemplate(
            value="low", label="Low", color="#4CAF50", description="Whenever a mentor is free"
        ),
        UrgencyTemplate(
            value="medium", label="Medium", color="#FF9800", description="Within the next hour"
        ),
        UrgencyTemplate(value="high", label="High", color="#F44336", description="I need help now"),
    ],
    default_urgency="medium",
    quick_actions=[
        QuickAction(subject="Math", text="I'm stuck on a homework problem"),
        QuickAction(subject="Math", text="Can you explain this concept step by step?"),
        QuickAction(subject="Programming", text="My code doesn't compile / run"),
        QuickAction(subject="Programming", text="Can you review my code?"),
        QuickAction(subject="Science", text="I don't understand this experiment or formula"),
        QuickAction(subject="Science", text="Can you help me prepare for a test?"),
        QuickAction(subject="General", text="I need help getting started"),
        QuickAction(subject="General", text="Can we talk through my study plan?"),
    ],
)


def help_templates() -> dict[str, object]:
    """The body of ``GET /api/help/templates`` (the gateway serves it itself)."""
    return HELP_TEMPLATES.model_dump(mode="json")
