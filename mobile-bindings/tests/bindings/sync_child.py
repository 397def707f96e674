"""A phone process for the kill test: opens the client in DATA_DIR and syncs with tiny pages.

    sync_child.py DATA_DIR SERVER_URL loop   sync again and again, printing a line per request
    sync_child.py DATA_DIR SERVER_URL once   one sync; prints {"pending": N, "reports": [ids]}
"""

import json
import sys

import gridsync_mobile as gm
from harness import phone


class Printer(gm.SyncListener):
    def on_progress(self, progress):
        print(f"progress {progress.phase} {progress.round}", flush=True)


def main():
    data, base, mode = sys.argv[1:4]
    # One report per push and per pull page, so a sync is many requests and commits.
    client = phone(data, base, push_max_bytes=1, pull_byte_budget=1)
    if mode == "loop":
        while True:
            client.sync_with_progress(Printer())
    summary = client.sync()
    print(json.dumps({
        "pending": summary.pending_changes,
        "reports": [r.id for r in client.list_reports(None)],
    }), flush=True)


if __name__ == "__main__":
    main()
