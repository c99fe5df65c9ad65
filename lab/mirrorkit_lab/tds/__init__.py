"""TDS 7.1-7.4 wire layer of the lab (the stand-in SQL Server).

Entry point: ``mirrorkit_lab.tds.server.TdsServer``. The wire layer only
talks to the engine through ``mirrorkit_lab.engine.api`` and turns the
returned ``results`` events into tokens.

Module map: packets (framing), prelogin (+ tls, transport), login7, types
(result column encoding), params (RPC parameter decoding), rpc (RPC request
parsing), tokens (token encoders), response (events -> tokens), procs
(sp_executesql/sp_prepare family), connection (per-connection state machine),
server (listener).
"""
