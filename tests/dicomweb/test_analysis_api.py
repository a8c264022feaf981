"""The analysis API: a study's analysis with results and links, the job list with
filters, and re-running a dead job (admin)."""

from __future__ import annotations

import json

import httpx

from archive.index.jobs import create_job, mark_finished, record_results
from archive.keys import result_key
from tests.dicomweb.helpers import ingest


def _seed(server, library):
    """Two studies; the first has a done job of generation 1 and a dead one of 2."""
    ingest(server, library.files["smith"] + library.files["jones"], "research")
    study, series, sops = library.uids("smith")
    other = library.uids("jones")
    archive = server.archive
    with archive.sessions.begin() as db:
        done = create_job(db, study, series, 1, "densitometry", 3, sent=True)
        later = create_job(db, study, series, 2, "densitometry", 3, sent=True)
        elsewhere = create_job(db, other[0], other[1], 1, "densitometry", 3, sent=True)
    key = result_key(study, done.id, "summary.json")
    summary = {"lung_volume_ml": 4821.5, "well_aerated_percent": 81.2,
               "prognosis": {"category": "low", "rule": "%WAL > 73", "not_for_diagnostic_use": True}}
    archive.store.put_bytes(key, json.dumps(summary).encode())
    # The job's SEG and SR point at instances in the archive (here: two of the study's own).
    record_results(archive.sessions, done.id, key, sops[0], sops[1])
    mark_finished(archive.sessions, done.id, "done")
    mark_finished(archive.sessions, later.id, "dead", "lung mask is empty")
    return study, series, sops, done, later, elsewhere


def test_study_analysis_state_results_and_links(fresh_server, library):
    server = fresh_server()
    study, series, sops, done, later, _ = _seed(server, library)
    with server.archive.sessions.begin() as db:  # generation 2 has not run yet: results of 1 are current
        from archive.index.models import Job

        db.get(Job, later.id).superseded_by = None
    response = httpx.get(f"{server.url}/api/studies/{study}/analysis")
    assert response.status_code == 200
    body = response.json()
    assert body["job"]["id"] == later.id and body["job"]["state"] == "dead"
    assert body["job"]["error"] == "lung mask is empty"
    assert [job["id"] for job in body["history"]] == [later.id, done.id]

    # Once the dead generation-2 job is set aside as superseded, generation 1's results show.
    with server.archive.sessions.begin() as db:
        db.get(Job, later.id).superseded_by = "manual"
    body = httpx.get(f"{server.url}/api/studies/{study}/analysis").json()
    assert body["job"]["id"] == done.id and body["job"]["state"] == "done"
    assert body["measurements"]["well_aerated_percent"] == 81.2
    assert body["prognosis"] == {"category": "low", "rule": "%WAL > 73", "not_for_diagnostic_use": True}
    base = f"{server.dicomweb}/studies/{study}/series/{series}/instances"
    assert body["links"] == {"seg": f"{base}/{sops[0]}", "sr": f"{base}/{sops[1]}", "report": None}
    assert httpx.get(body["links"]["seg"] + "/metadata").status_code == 200
    assert httpx.get(f"{server.url}/api/studies/1.2.3.4/analysis").status_code == 404
    assert httpx.get(f"{server.url}/api/studies/1.2.x/analysis").status_code == 400


def test_job_list_filters_and_pages(fresh_server, library):
    server = fresh_server()
    study, _, _, done, later, elsewhere = _seed(server, library)
    every = httpx.get(f"{server.url}/api/jobs").json()
    assert every["total"] == 3 and len(every["jobs"]) == 3
    assert [j["id"] for j in httpx.get(f"{server.url}/api/jobs", params={"state": "dead"}).json()["jobs"]] == [later.id]
    of_study = httpx.get(f"{server.url}/api/jobs", params={"study": study}).json()
    assert {j["id"] for j in of_study["jobs"]} == {done.id, later.id}
    page = httpx.get(f"{server.url}/api/jobs", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and len(page["jobs"]) == 1
    assert httpx.get(f"{server.url}/api/jobs", params={"state": "exploded"}).status_code == 422
    assert httpx.get(f"{server.url}/api/jobs", params={"limit": 0}).status_code == 422


def test_rerun_queues_a_dead_job_again_once(fresh_server, library):
    server = fresh_server()
    _, _, _, done, later, _ = _seed(server, library)
    response = httpx.post(f"{server.url}/api/jobs/{later.id}/rerun")
    assert response.status_code == 200
    assert response.json()["state"] == "queued" and response.json()["attempts"] == 0
    again = httpx.post(f"{server.url}/api/jobs/{later.id}/rerun")
    assert again.status_code == 409  # already queued
    assert httpx.post(f"{server.url}/api/jobs/{done.id}/rerun").status_code == 409  # done jobs are not re-run
    lease = server.archive.queue.receive(wait_s=5)  # a worker gets it from its first attempt
    assert lease is not None and lease.message.job_id == later.id and lease.attempt == 1


def test_the_api_is_in_the_openapi_schema(open_server):
    schema = httpx.get(f"{open_server.url}/openapi.json").json()
    for path in ("/api/studies/{study}/analysis", "/api/jobs", "/api/jobs/{job_id}/rerun", "/dicomweb/studies",
                 "/dicomweb/studies/{study}/series/{series}/metadata"):
        assert path in schema["paths"], path
    assert "StudyAnalysis" in schema["components"]["schemas"]
