"""The canary follows the registry: when the candidate alias moves to a new version (a run of
`tuneline watch` or `tuneline run` registered one), the server loads it and makes it the
canary's candidate without a restart. The new candidate starts with fresh windows, and the
existing auto-rollback guards it as it guarded the last one."""

from __future__ import annotations

import logging
import threading
from typing import Any

from tuneline.config import PipelineConfig
from tuneline.serve.state import Canary, ServerState, canary_for, with_retrieval_routes

RETIRE_AFTER_S = 60.0  # an engine swapped out keeps answering what it already took


class CandidateFollower:
    """Polls the registry every `interval_s` and swaps the canary's candidate arm when its
    alias points at another version."""

    def __init__(self, state: ServerState, cfg: PipelineConfig, interval_s: float) -> None:
        from tuneline.registry import open_registry

        assert state.canary is not None
        self.state, self.cfg, self.interval_s = state, cfg, interval_s
        self.registry = open_registry(cfg.register)
        self.arm = state.canary.router.candidate  # the served name, e.g. "capitals@candidate"
        self.reference = cfg.serve.canary.candidate or self.arm
        self.version = self.registry.get(self.reference).version
        # The engine this follower loaded last; the ones loaded at start (shared with the
        # champion and other names) are never retired here.
        self._loaded: Any = None
        self._log = logging.getLogger("tuneline.serve")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneline-follow", daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """One poll; True when a new candidate was loaded and swapped in."""
        from tuneline.serve.served_models import load_routes, served_weights

        version = self.registry.get(self.reference)
        if version.version == self.version:
            return False
        plan = served_weights(self.registry, self.reference, extra=(self.arm,))
        loaded = load_routes([plan], self.cfg, announce=lambda line: self._log.info(line))
        state = self.state
        for route in {id(r.engine): r for r in loaded.values()}.values():
            if hasattr(route.engine, "batcher"):
                route.engine.batcher.on_batch = state.metrics.observe_batch
        if state.retriever is not None:
            loaded = with_retrieval_routes(loaded, state.settings.retrieval == "always")
        routes = {**state.routes, **loaded}
        previous = self._loaded
        if previous is not None:  # the last version this follower loaded goes, names and all
            routes = {n: r for n, r in routes.items()
                      if r.engine is not previous or n in loaded}
        state.routes = routes  # one assignment: readers see the old routes or the new
        self._loaded = next(iter(loaded.values())).engine
        assert state.canary is not None
        state.canary = Canary(state.canary.name, canary_for(state, state.canary.name))
        self._log.warning("canary candidate replaced", extra={"fields": {
            "event": "canary_candidate", "candidate": self.reference,
            "from_version": self.version, "to_version": version.version}})
        self.version = version.version
        if previous is not None:
            retire = threading.Timer(RETIRE_AFTER_S, previous.close)
            retire.daemon = True
            retire.start()
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a failed poll must never take the server down
                self._log.exception("following the candidate alias failed")
