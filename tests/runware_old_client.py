"""Drives the older Runware SDK (`runware` 0.5.24, WebSocket only) against a service; run in its own process.

runware 0.5.24 and runware-sdk 1.8.0 are both the package `runware`, so this one is installed apart
(`.venv/runware-0.5`, see the Makefile) and imported from there by a child interpreter:

    python tests/runware_old_client.py SDK_FOLDER WS_URL KEY JOB.json   -> prints one JSON answer

JOB: {"upload": a PNG path or null, "tasks": [raw tasks for send()]}; a task's "inputImage" of
"$upload" means the UUID the upload returned. The answer: {"upload": {imageUUID, imageURL},
"frames": {taskUUID: [frames]}} or {"error": "<exception type>: <message>"}.
"""

import asyncio
import json
import sys


async def run(url: str, key: str, job: dict) -> dict:
    from runware import Runware

    client = Runware(api_key=key, url=url)
    out: dict = {"frames": {}}
    try:
        await client.connect()
        await client.ensureConnection()
        if job.get("upload"):
            uploaded = await client.uploadImage(job["upload"])
            out["upload"] = {"imageUUID": uploaded.imageUUID, "imageURL": uploaded.imageURL}
        tasks = job.get("tasks", [])
        done = asyncio.Event()
        expected = {t["taskUUID"] for t in tasks}

        def ours(m: dict) -> bool:
            items = list(m.get("data") or []) + list(m.get("errors") or [])
            return any(isinstance(i, dict) and i.get("taskUUID") in expected for i in items)

        def collect(m: dict) -> None:
            for item in list(m.get("data") or []) + list(m.get("errors") or []):
                if isinstance(item, dict) and item.get("taskUUID") in expected:
                    out["frames"].setdefault(item["taskUUID"], []).append(m)
            if set(out["frames"]) >= expected:
                done.set()

        client.addListener(lis=collect, check=ours)
        for task in tasks:
            if task.get("inputImage") == "$upload":
                task["inputImage"] = out["upload"]["imageUUID"]
        if tasks:
            await client.send(tasks)
            await asyncio.wait_for(done.wait(), 120)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.disconnect()
    return out


def main() -> None:
    folder, url, key, job_path = sys.argv[1:5]
    sys.path.insert(0, folder)
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    print(json.dumps(asyncio.run(run(url, key, job))), flush=True)


if __name__ == "__main__":
    main()
