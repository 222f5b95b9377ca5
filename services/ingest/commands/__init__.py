"""The gateway's commands, one module per subject and one async function per command.

Every command has the same shape: the adapters (`Ports`) and keyword arguments in, with the clock
passed as `now`; a refusal raised as a `Problem` (RFC 9457); what to answer returned as a `Reply`
(or, for an event, what was accepted). Routers translate HTTP to these calls and back; `points
admin` runs the same functions, so an operator's command and an admin's request are one thing.
"""
