#!/usr/bin/env python3
"""Prints a free loopback TCP port below Linux's ephemeral range (32768-60999),
so that no connect() or bind to port 0 elsewhere takes it before the server
under test binds it (tests pick ports at random from 20000-32000)."""
import random
import socket

for _ in range(500):
    port = random.randint(20000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port in 20000-32000")
