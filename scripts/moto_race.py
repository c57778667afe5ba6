"""Checks that an S3 endpoint lets exactly one of several racing create-only PUTs win.

    python3 scripts/moto_race.py PORT [KEYS] [WRITERS]

For each of KEYS fresh keys, WRITERS threads PUT the same key at once with
`If-None-Match: *`; more than one 200 for a key is a lost write that its writer saw
succeed. Prints the count and exits 1 if there was any. Run it with the CPUs busy (e.g.
`stress-ng --cpu 4 --taskset 0` with the server pinned to core 0): the race needs a thread
switch between the server's check and its store.
"""

import http.client
import sys
import threading
import uuid


def request(port, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def main():
    port = int(sys.argv[1])
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    writers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    bucket = f"race-{uuid.uuid4().hex[:12]}"
    assert request(port, "PUT", f"/{bucket}") == 200
    doubles = 0
    statuses = {}
    for i in range(keys):
        got = []
        barrier = threading.Barrier(writers)

        def put(tag):
            barrier.wait()
            s = request(port, "PUT", f"/{bucket}/k{i}", tag * 1000, {"If-None-Match": "*"})
            got.append(s)

        threads = [threading.Thread(target=put, args=(bytes([65 + w]),)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in got:
            statuses[s] = statuses.get(s, 0) + 1
        if got.count(200) != 1:
            doubles += 1
    print(f"{keys} keys x {writers} racing create-only PUTs: answers {statuses}; "
          f"{doubles} keys without exactly one winner")
    sys.exit(1 if doubles else 0)


if __name__ == "__main__":
    main()
