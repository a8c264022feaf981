"""The ``l3net`` command: run the whole stack or one part of it.

Every option also has an ``L3NET_*`` environment variable (docs/configuration.md);
an option given on the command line wins.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from archive.context import open_archive
from archive.settings import Settings
from l3net.logs import configure_logging
from l3net.runtime import run_until_signalled, start_node, start_web, start_worker

app = typer.Typer(
    name="l3net",
    help="L3-net Node: receive chest CT from PACS, quantify COVID-19 lung opacity, serve DICOM SEG and SR.",
    no_args_is_help=True,
    add_completion=False,
)
log = logging.getLogger("l3net")

DataDir = typer.Option(None, "--data-dir", help="Root of local state (env L3NET_DATA_DIR; default ./l3net-data).")
DicomPort = typer.Option(None, "--dicom-port", help="DICOM port (env L3NET_DICOM_PORT; default 11112).")
DicomHost = typer.Option(None, "--dicom-host", help="DICOM listen address (env L3NET_DICOM_HOST; default 127.0.0.1).")
AeTitle = typer.Option(None, "--ae-title", help="Our AE title (env L3NET_AE_TITLE; default L3NET).")
HttpHost = typer.Option(None, "--http-host", help="HTTP listen address (env L3NET_HTTP_HOST; default 127.0.0.1).")
HttpPort = typer.Option(None, "--http-port", help="HTTP port (env L3NET_HTTP_PORT; default 8080).")
LogLevel = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR.")
AllowInsecure = typer.Option(
    None,
    "--allow-insecure-no-auth/--no-allow-insecure-no-auth",
    help="Serve HTTP without authorization on a non-loopback address (env L3NET_AUTH_ALLOW_INSECURE; default off).",
)


def _settings(**flags) -> Settings:
    """Environment first, then the flags that were given."""
    return Settings(**{key: value for key, value in flags.items() if value is not None})


def _run(parts: list[str], settings: Settings, log_level: str) -> None:
    configure_logging(log_level)
    archive = open_archive(settings)
    log.info(
        "event=starting parts=%s data_dir=%s index=%s objects=%s queue=%s",
        ",".join(parts), settings.data_dir.resolve(), archive.engine.url.render_as_string(hide_password=True),
        archive.store.describe(), archive.queue.describe(),
    )
    from dicom_node.stability import BusyStudies

    # Every spool of this process (the node's, the web part's STOW spool) registers
    # here, so the stability monitor leaves alone a study with instances in either.
    busy = BusyStudies()
    starters = {
        "node": lambda archive: start_node(archive, busy=busy),
        # Without a node beside it, the web part runs the stability monitor itself.
        "web": lambda archive: start_web(archive, stability_monitor="node" not in parts, busy=busy),
        "worker": start_worker,
    }
    started = []
    try:
        for part in parts:
            started.append(starters[part](archive))
    except Exception as error:
        log.error("event=start_failed part=%s error=%r", part, str(error))
        for running in reversed(started):
            running.stop()
        archive.close()
        raise typer.Exit(1)
    run_until_signalled(started)
    archive.close()


@app.command()
def serve(
    data_dir: Optional[Path] = DataDir,
    dicom_host: Optional[str] = DicomHost,
    dicom_port: Optional[int] = DicomPort,
    ae_title: Optional[str] = AeTitle,
    http_host: Optional[str] = HttpHost,
    http_port: Optional[int] = HttpPort,
    allow_insecure_no_auth: Optional[bool] = AllowInsecure,
    log_level: str = LogLevel,
) -> None:
    """Run node, web and worker together in one process (the embedded stack)."""
    settings = _settings(
        data_dir=data_dir, dicom_host=dicom_host, dicom_port=dicom_port, ae_title=ae_title,
        http_host=http_host, http_port=http_port, auth_allow_insecure=allow_insecure_no_auth,
    )
    _run(["node", "web", "worker"], settings, log_level)


@app.command()
def node(
    data_dir: Optional[Path] = DataDir,
    dicom_host: Optional[str] = DicomHost,
    dicom_port: Optional[int] = DicomPort,
    ae_title: Optional[str] = AeTitle,
    log_level: str = LogLevel,
) -> None:
    """Run only the DICOM node: C-ECHO and C-STORE, spool, committer, study stability."""
    settings = _settings(data_dir=data_dir, dicom_host=dicom_host, dicom_port=dicom_port, ae_title=ae_title)
    _run(["node"], settings, log_level)


@app.command()
def web(
    data_dir: Optional[Path] = DataDir,
    http_host: Optional[str] = HttpHost,
    http_port: Optional[int] = HttpPort,
    allow_insecure_no_auth: Optional[bool] = AllowInsecure,
    log_level: str = LogLevel,
) -> None:
    """Run only the HTTP server: DICOMweb (QIDO-RS, WADO-RS, STOW-RS), analysis API, health, metrics."""
    settings = _settings(
        data_dir=data_dir, http_host=http_host, http_port=http_port, auth_allow_insecure=allow_insecure_no_auth
    )
    _run(["web"], settings, log_level)


@app.command()
def worker(data_dir: Optional[Path] = DataDir, log_level: str = LogLevel) -> None:
    """Run only an analysis worker: take jobs from the queue and write SEG, SR, PDF report and summary."""
    _run(["worker"], _settings(data_dir=data_dir), log_level)


@app.command()
def analyze(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder holding one CT series (DICOM files)."),
    out: Path = typer.Option(
        ..., "--out", help="Folder to write seg.dcm, sr.dcm, summary.json and the PDF report (report.dcm, report.pdf) into."
    ),
    engine: str = typer.Option("densitometry", "--engine", help="Analysis engine: densitometry or l3net."),
    log_level: str = LogLevel,
) -> None:
    """Analyse one series offline, with a progress bar: the worker's pipeline without the archive.

    Exit status: 0 done, 2 the series is not analysable (the reason is printed), 1 the
    engine cannot run (no weights, unknown name)."""
    from inference.engines import EngineUnavailable
    from inference.pipeline import SeriesNotAnalysable, analyze, write_outputs
    from inference.volume import read_directory

    configure_logging(log_level)
    try:
        result = analyze(read_directory(directory), engine, progress=True, settings=Settings())
    except SeriesNotAnalysable as error:
        typer.echo(f"not analysable: {error}", err=True)
        raise typer.Exit(2)
    except (EngineUnavailable, ValueError) as error:  # the engine's setup, or an unknown engine name
        typer.echo(f"cannot analyse: {error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"wrote {', '.join(str(path) for path in write_outputs(result, out).values())}")
    prognosis = result.summary.get("prognosis", {})
    if prognosis:
        typer.echo(f"suggested prognosis: {prognosis.get('category')} ({prognosis.get('label', '')})")


@app.command()
def config() -> None:
    """Print the effective settings (environment and defaults) as JSON."""
    sys.stdout.write(Settings().model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    app()
