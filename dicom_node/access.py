"""Who may open an association: calling-AE allow-list (optionally bound to a host),
called-AE check. Rejections use the A-ASSOCIATE-RJ reasons of PS3.8 §9.3.4."""

from __future__ import annotations

from dataclasses import dataclass

# (result, source, reason): rejected-permanent, DICOM UL service-user.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # calling-AE-title-not-recognized
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # called-AE-title-not-recognized


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: an AE title (``*`` for any) and an optional host."""

    ae_title: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> "AllowEntry":
        ae, _, host = text.strip().partition("@")
        return cls(ae.strip(), host.strip() or None)

    def permits(self, calling_ae: str, host: str) -> bool:
        return self.ae_title in ("*", calling_ae) and self.host in (None, host)


def check_association(
    allow: list[AllowEntry], our_ae: str, calling_ae: str, called_ae: str, host: str
) -> tuple[tuple[int, int, int], str] | None:
    """None when the association may proceed, else the reject triple and a reason."""
    if called_ae.strip() != our_ae.strip():
        return REJECT_CALLED_AE, f"called AE {called_ae!r} is not {our_ae!r}"
    if not any(entry.permits(calling_ae.strip(), host) for entry in allow):
        return REJECT_CALLING_AE, f"calling AE {calling_ae!r} from {host} is not allowed"
    return None
