"""Starting and stopping the parts in one process, and waiting for SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import uvicorn

from archive.context import Archive

if TYPE_CHECKING:
    from dicom_node.stability import BusyStudies

log = logging.getLogger("l3net")


@dataclass
class Part:
    """A started part: its name and how to stop it."""

    name: str
    stop: Callable[[], None]


def start_node(archive: Archive, busy: BusyStudies | None = None) -> Part:
    """The DICOM node; its stability monitor asks ``busy`` (to which it adds its own
    committer) which studies still have instances waiting in a spool."""
    from dicom_node.service import Node

    node = Node(archive, busy=busy).start()
    return Part("node", node.stop)


def start_web(archive: Archive, stability_monitor: bool = False, busy: BusyStudies | None = None) -> Part:
    """HTTP: DICOMweb, the analysis API, health and metrics, with the STOW-RS receive path.

    STOW-RS uploads get their own spool folder (``{spool_dir}/stow``) and committer, so
    the web process never commits the node's files. With ``stability_monitor`` (``l3net
    web`` without a node in the process) it also runs the study-stability monitor, so
    uploaded studies become stable and get their job; two monitors over one index are
    safe (exactly-once comes from the database). The STOW committer is added to
    ``busy``: under ``l3net serve`` the node's monitor asks the same one, so it does not
    judge a study stable while STOW instances of it wait in this spool."""
    from archive.committer import Committer
    from archive.spool import Spool
    from dicomweb.app import create_app
    from dicom_node.stability import BusyStudies
    from dicomweb.stow_ingest import StowIngest

    settings = archive.settings
    spool = Spool(settings.resolved_spool_dir / "stow")
    committer = Committer(archive, spool)
    busy = busy if busy is not None else BusyStudies()
    busy.add(committer.pending_studies)
    app = create_app(archive, StowIngest(settings, spool, committer))  # refuses an unsafe exposure first
    committer.replay()
    committer.start()
    stop_monitor = threading.Event()
    monitor = None
    if stability_monitor:
        from dicom_node.stability import run_monitor

        monitor = threading.Thread(
            target=run_monitor, args=(archive, busy, stop_monitor), name="stability", daemon=True
        )
        monitor.start()
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # our logfmt handler on the root logger
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    log.info("event=web.listening host=%s port=%d auth=%s", settings.http_host, settings.http_port, settings.auth)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)
        committer.wait_idle(timeout=60)
        committer.stop()
        stop_monitor.set()
        if monitor is not None:
            monitor.join()

    return Part("web", stop)


def start_worker(archive: Archive) -> Part:
    from inference.job import process_job
    from inference.worker import run_worker

    stop_event = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(archive.queue, lambda lease: process_job(archive, lease), stop_event),
        kwargs={"visibility_timeout_s": archive.settings.job_visibility_timeout_s},
        name="worker",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        stop_event.set()
        thread.join()

    return Part("worker", stop)


def run_until_signalled(parts: list[Part]) -> None:
    """Block until SIGINT or SIGTERM, then stop the parts in reverse start order."""
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("event=shutdown signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for part in reversed(parts):
            part.stop()
            log.info("event=stopped part=%s", part.name)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
