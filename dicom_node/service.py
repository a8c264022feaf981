"""The running node: spool replay, committer threads, the SCP and the stability monitor."""

from __future__ import annotations

import logging
import threading

from archive.committer import Committer
from archive.context import Archive
from archive.spool import Spool
from dicom_node.scp import Receiver, start_scp
from dicom_node.stability import BusyStudies, run_monitor

log = logging.getLogger("l3net.node")


class Node:
    """Start with :meth:`start`, stop with :meth:`stop`; ``port`` is the bound port.

    ``busy`` is what the stability monitor asks which studies still have uncommitted
    instances; the node adds its own committer to it. Pass one that other spools of
    the process also register with (``l3net serve``: the web part's STOW spool)."""

    def __init__(self, archive: Archive, committer_threads: int = 2, busy: BusyStudies | None = None) -> None:
        self.archive = archive
        self.spool = Spool(archive.settings.resolved_spool_dir)
        self.committer = Committer(archive, self.spool, threads=committer_threads)
        self.busy = busy if busy is not None else BusyStudies()
        self.busy.add(self.committer.pending_studies)
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._server = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "Node":
        # Replay before listening: everything acknowledged before a crash is committed
        # ahead of new arrivals, and the stability monitor sees it as pending meanwhile.
        self.committer.replay()
        self.committer.start()
        self._server = start_scp(Receiver(self.archive.settings, self.spool, self.committer))
        self._monitor = threading.Thread(
            target=run_monitor,
            args=(self.archive, self.busy, self._stop),
            name="stability",
            daemon=True,
        )
        self._monitor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end open associations, finish committing what was
        acknowledged, stop the monitor."""
        if self._server is not None:
            self._server.shutdown()  # no new associations
            # Open associations would go on acknowledging instances after the committer
            # stopped, and their (non-daemon) DUL threads keep the process alive as long
            # as a peer holds them open. Abort them as pynetdicom's AE.shutdown does, and
            # let a C-STORE handler that is mid-way finish its spool write and submit.
            associations = self._server.active_associations
            for assoc in associations:
                assoc.abort()
            for assoc in associations:
                assoc.join(timeout=30)
            if associations:
                log.info("event=node.associations_aborted count=%d", len(associations))
            self._server = None
        self.committer.wait_idle(timeout=60)
        self.committer.stop()
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()
        log.info("event=node.stopped")
