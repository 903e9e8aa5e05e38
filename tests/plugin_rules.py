"""Throwaway rules for the orchestration tests, loaded as a study plugin (``plugins:
[tests.plugin_rules]``) by ``gamedyn run`` subprocesses and their workers only — never imported by the
test process itself, so registry-wide tests do not see them.

All step like ``simultaneous``; environment variables (inherited by the workers) change how:

- ``sleepy_for_test`` sleeps ``GAMEDYN_TEST_NAP`` seconds per step (default 0): a study whose
  duration does not depend on how fast gamedyn steps, for the kill-and-resume test;
- ``explode_for_test`` raises at step 3 while ``GAMEDYN_TEST_EXPLODE`` is set: a user rule with a
  bug, fixed between two runs of the same study;
- ``die_for_test`` kills its own process while ``GAMEDYN_TEST_DIE`` is set: a worker lost.
"""

from __future__ import annotations

import os
import signal
import time

from gamedyn.rules import RULES
from gamedyn.rules.simultaneous import Simultaneous


@RULES.register("sleepy_for_test")
class SleepyForTest(Simultaneous):
    """Simultaneous play, sleeping GAMEDYN_TEST_NAP seconds per step."""

    def step(self, ctx, params, state):
        nap = float(os.environ.get("GAMEDYN_TEST_NAP", "0"))
        if nap:
            time.sleep(nap)
        return super().step(ctx, params, state)


@RULES.register("explode_for_test")
class ExplodeForTest(Simultaneous):
    """Simultaneous play that raises at step 3 while GAMEDYN_TEST_EXPLODE is set."""

    def init(self, ctx, params):
        return {**super().init(ctx, params), "k": 0}

    def step(self, ctx, params, state):
        if state["k"] == 3 and os.environ.get("GAMEDYN_TEST_EXPLODE"):
            raise FloatingPointError(f"exploded on purpose at step {state['k']}\nsecond line")
        params, state = super().step(ctx, params, state)
        return params, {**state, "k": state["k"] + 1}


@RULES.register("die_for_test")
class DieForTest(Simultaneous):
    """Simultaneous play whose process is killed (SIGKILL) at the first step while GAMEDYN_TEST_DIE
    is set: a worker lost to the out-of-memory killer."""

    def step(self, ctx, params, state):
        if os.environ.get("GAMEDYN_TEST_DIE"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(ctx, params, state)
