"""Levels (督办): escalation levels, deputies' escalations, whistles (吹哨), merging (并单), recurring issues,
circulation of letters (通报) and talks (约谈). May use cases and warnings; never the reverse."""
