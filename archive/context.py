"""The shared handles every part works through: settings, object store, index, queue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from archive.index.db import make_engine, migrate, session_factory
from archive.objectstore import ObjectStore, open_object_store
from archive.queue import JobQueue, open_job_queue
from archive.settings import Settings


@dataclass
class Archive:
    settings: Settings
    store: ObjectStore
    engine: Engine
    sessions: sessionmaker[Session]
    queue: JobQueue

    def close(self) -> None:
        self.engine.dispose()


def open_archive(settings: Settings, run_migrations: bool = True) -> Archive:
    """Open the object store, the index (migrated to the newest schema) and the queue."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    if run_migrations:
        migrate(engine)
    sessions = session_factory(engine)
    return Archive(settings, open_object_store(settings), engine, sessions, open_job_queue(settings, sessions))
