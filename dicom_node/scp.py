"""The DICOM SCP: C-ECHO, and C-STORE of every storage SOP class into the durable spool.

Handlers stay small: ``on_requested`` checks access, ``on_store`` validates and spools,
``on_conn_open`` tunes the socket. A C-STORE is answered Success only after its bytes
are fsynced in the spool; the committer takes it from there.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from archive.committer import Committer
# Shared with STOW-RS, so both receivers accept and refuse alike.
from archive.ingest import ACCEPTED_TRANSFER_SYNTAXES, encoding_problem
from archive.settings import Settings
from archive.spool import Spool
from archive.uids import is_valid_uid
from dicom_node.access import AllowEntry, check_association

log = logging.getLogger("l3net.node")

assert set(ACCEPTED_TRANSFER_SYNTAXES) <= set(ALL_TRANSFER_SYNTAXES)

# C-STORE statuses (PS3.4 Annex B.2.3 / PS3.7 Annex C).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]  # LO: 64 characters at most
    return status


@dataclass
class Receiver:
    """What the handlers need: settings, the spool, the committer, and per-association counts."""

    settings: Settings
    spool: Spool
    committer: Committer
    allow: list[AllowEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.allow = [AllowEntry.parse(text) for text in self.settings.allowed_calling_aes]


def on_conn_open(event) -> None:
    # Without TCP_NODELAY each small C-STORE-RSP waits for the peer's delayed ACK
    # (~40 ms on Linux): that, not bandwidth, bounds per-instance latency.
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_requested(event, receiver: Receiver) -> None:
    rq = event.assoc.requestor
    host = event.assoc.requestor.address
    verdict = check_association(
        receiver.allow, receiver.settings.ae_title, rq.primitive.calling_ae_title,
        rq.primitive.called_ae_title, host,
    )
    if verdict is not None:
        (result, source, reason), why = verdict
        log.warning("event=association.rejected calling_ae=%s host=%s reason=%r", rq.primitive.calling_ae_title, host, why)
        # As pynetdicom's own rejection does: send the A-ASSOCIATE-RJ, then wait in
        # kill() until it is on the wire, before the server closes the socket.
        event.assoc.acse.send_reject(result, source, reason)
        evt.trigger(event.assoc, evt.EVT_REJECTED, {})
        event.assoc.kill()


def on_accepted(event) -> None:
    assoc = event.assoc
    log.info(
        "event=association.accepted calling_ae=%s host=%s port=%s contexts=%d",
        assoc.requestor.ae_title, assoc.requestor.address, assoc.requestor.port,
        len(assoc.accepted_contexts),
    )


def on_released(event) -> None:
    assoc = event.assoc
    log.info("event=association.released calling_ae=%s host=%s", assoc.requestor.ae_title, assoc.requestor.address)


def on_aborted(event) -> None:
    assoc = event.assoc
    log.warning("event=association.aborted calling_ae=%s host=%s", assoc.requestor.ae_title, assoc.requestor.address)


def on_echo(event) -> int:
    log.info("event=echo calling_ae=%s", event.assoc.requestor.ae_title)
    return SUCCESS


def _part10(event, calling_ae: str) -> tuple[bytes, bytes]:
    """The file meta (with our source AE recorded) and the dataset bytes as sent."""
    meta = FileMetaDataset(event.file_meta)
    meta.SourceApplicationEntityTitle = calling_ae.strip()[:16] or "UNKNOWN"
    buffer = BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue(), event.encoded_dataset(include_meta=False)


def on_store(event, receiver: Receiver) -> int | Dataset:
    calling_ae = event.assoc.requestor.ae_title
    sop_uid = event.request.AffectedSOPInstanceUID
    if receiver.spool.free_bytes() < receiver.settings.min_free_disk_mb << 20:
        log.error("event=instance.refused reason=disk_full sop=%s calling_ae=%s", sop_uid, calling_ae)
        return _status(OUT_OF_RESOURCES, "Out of resources: receive spool below free-disk watermark")

    meta, body = _part10(event, calling_ae)
    problem = encoding_problem(body, event.context.transfer_syntax)
    if problem is not None:
        log.error("event=instance.refused reason=malformed sop=%s calling_ae=%s error=%r", sop_uid, calling_ae, problem)
        return _status(CANNOT_UNDERSTAND, f"Cannot parse dataset: {problem}")
    try:
        ds = pydicom.dcmread(BytesIO(meta + body), stop_before_pixels=True)
        uids = {key: str(ds.get(key, "")) for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    except Exception as error:  # any parse failure is the sender's data, not our crash
        log.error("event=instance.refused reason=unparseable sop=%s calling_ae=%s error=%r", sop_uid, calling_ae, str(error)[:200])
        return _status(CANNOT_UNDERSTAND, f"Cannot parse dataset: {str(error)[:40]}")

    bad = [key for key, value in uids.items() if not is_valid_uid(value)]
    if bad or uids["SOPInstanceUID"] != sop_uid:
        why = f"missing or invalid {', '.join(bad)}" if bad else "SOP Instance UID differs from the request"
        log.error("event=instance.refused reason=%r sop=%s calling_ae=%s", why, sop_uid, calling_ae)
        return _status(DATASET_DOES_NOT_MATCH_SOP_CLASS, why)

    try:
        path = receiver.spool.write([meta, body])
    except OSError as error:
        log.error("event=instance.refused reason=spool_write sop=%s error=%r", sop_uid, str(error))
        return _status(OUT_OF_RESOURCES, f"Cannot write spool: {error.strerror}")
    receiver.committer.submit(path, uids["StudyInstanceUID"])
    log.info(
        "event=instance.received sop=%s study=%s calling_ae=%s bytes=%d",
        sop_uid, uids["StudyInstanceUID"], calling_ae, len(meta) + len(body),
    )
    return SUCCESS


def build_ae(receiver: Receiver) -> AE:
    settings = receiver.settings
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_bytes
    # Access is checked in on_requested (allow-list with hosts); these stay off.
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.network_timeout = 60
    ae.dimse_timeout = 60
    ae.acse_timeout = 30
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, ACCEPTED_TRANSFER_SYNTAXES[:2])
    return ae


def start_scp(receiver: Receiver) -> ThreadedAssociationServer:
    """Listen on ``dicom_host:dicom_port`` in background threads; call ``.shutdown()`` to stop."""
    settings = receiver.settings
    ae = build_ae(receiver)
    handlers = [
        (evt.EVT_CONN_OPEN, on_conn_open),
        (evt.EVT_REQUESTED, on_requested, [receiver]),
        (evt.EVT_ACCEPTED, on_accepted),
        (evt.EVT_RELEASED, on_released),
        (evt.EVT_ABORTED, on_aborted),
        (evt.EVT_C_ECHO, on_echo),
        (evt.EVT_C_STORE, on_store, [receiver]),
    ]
    server = ae.start_server((settings.dicom_host, settings.dicom_port), block=False, evt_handlers=handlers)
    if "*" in settings.allowed_calling_aes and settings.dicom_host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("event=node.open_access host=%s: any calling AE is accepted; set L3NET_ALLOWED_CALLING_AES", settings.dicom_host)
    log.info("event=node.listening ae=%s host=%s port=%d", settings.ae_title, *server.server_address[:2])
    return server
