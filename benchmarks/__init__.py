"""asv benchmark suites for gravbench (see asv.conf.json; ``asv run``).

Each suite is parametrised by grid size; ``setup`` builds the problem and
calls every jitted function once, so compilation is never timed. A
combination too big for the machine raises ``NotImplementedError`` in setup
(asv marks it skipped).
"""
