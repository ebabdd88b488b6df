"""Cases (案件): the lifecycle, its limits (SLA), the case store, commands and the case API.

Imports nothing from levels or warnings."""
