"""The L3-net 2D UNet (optional: needs the ``gpu`` extra, ``torch==2.13.0``)."""
