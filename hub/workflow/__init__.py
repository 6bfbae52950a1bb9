"""The case workflow at the hub: states, deadlines, reminders, replies, statistics."""
